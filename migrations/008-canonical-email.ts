import type { Knex } from 'knex';
import { canonicalEmail } from '../src/security/email.js';

/**
 * Emails are stored in their canonical form and compared exactly, in place of `lower(email)` (PostgreSQL's case
 * mapping, which disagreed with the JavaScript one the throttle keys used).
 */
export async function up(knex: Knex): Promise<void> {
  const rows = await knex('users').select('id', 'email').orderBy('created_at');
  const byCanonical = new Map<string, Array<{ id: string; email: string }>>();
  for (const row of rows) byCanonical.set(canonicalEmail(row.email), [...(byCanonical.get(canonicalEmail(row.email)) ?? []), row]);
  // Two accounts, each with its own password and factors, cannot be merged by a migration: an admin decides.
  const collisions = [...byCanonical].filter(([, same]) => same.length > 1);
  if (collisions.length > 0) {
    const list = collisions.map(([canonical, same]) => `  ${canonical}: ${same.map((u) => `${u.id} <${u.email}>`).join(', ')}`).join('\n');
    throw new Error(
      `008-canonical-email: these users would share an email address once it is made canonical (trimmed, NFKC, lower case).\n${list}\n` +
        'Change the email of all but one of each group (or remove the extra accounts), then migrate again. Nothing was changed.',
    );
  }
  await knex.raw('drop index users_email_lower_id');
  await knex.raw('drop index users_email_lower_unique');
  for (const [canonical, [row]] of byCanonical) {
    if (row!.email !== canonical) await knex('users').where({ id: row!.id }).update({ email: canonical });
  }
  await knex.raw('create unique index users_email_unique on users (email)');
  // Keyset pagination of the users table orders by (email, id).
  await knex.raw('create index users_email_id on users (email, id)');
}

/** The indexes go back; the addresses stay canonical (lower case is what `lower(email)` compared anyway). */
export async function down(knex: Knex): Promise<void> {
  await knex.raw('drop index users_email_id');
  await knex.raw('drop index users_email_unique');
  await knex.raw('create unique index users_email_lower_unique on users (lower(email))');
  await knex.raw('create index users_email_lower_id on users (lower(email), id)');
}
