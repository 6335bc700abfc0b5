import type { Knex } from 'knex';

export async function up(knex: Knex): Promise<void> {
  // A passkey is a user_factors row (nickname, last use, removal and MFA reset work as for every factor; its public
  // key sealed to the row like a TOTP seed, so a row planted by database write alone does not verify) plus what
  // WebAuthn needs: the credential id, unique and indexed because a passwordless sign-in starts from it alone.
  await knex.schema.createTable('webauthn_credentials', (t) => {
    t.uuid('factor_id').primary().references('id').inTable('user_factors').onDelete('CASCADE');
    t.uuid('user_id').notNullable().references('id').inTable('users').onDelete('CASCADE');
    t.text('credential_id').notNullable().unique();
    t.bigInteger('sign_count').notNullable().defaultTo(0);
    t.jsonb('transports').notNullable().defaultTo('[]');
    // Backup eligible: the key may be synced off the device (amr swk); otherwise it is device-bound (amr hwk).
    t.boolean('backup_eligible').notNullable();
    t.boolean('backed_up').notNullable();
    t.text('aaguid');
    t.index(['user_id']);
  });

  // Challenges are stored server-side and taken once: a replayed or late response finds nothing to answer.
  await knex.schema.createTable('webauthn_challenges', (t) => {
    // What the challenge is bound to: one sign-in (its interaction), or one enrolment.
    t.text('binding').primary();
    t.text('challenge').notNullable();
    t.timestamp('expires_at', { useTz: true }).notNullable();
  });

  // Decided with the first factor: this sign-in's second step must be phishing resistant (client, acr_values, role).
  await knex.schema.alterTable('login_progress', (t) => {
    t.boolean('phishing_resistant').notNullable().defaultTo(false);
  });
}

export async function down(knex: Knex): Promise<void> {
  await knex.schema.alterTable('login_progress', (t) => t.dropColumn('phishing_resistant'));
  await knex.schema.dropTableIfExists('webauthn_challenges');
  await knex.schema.dropTableIfExists('webauthn_credentials');
  await knex('user_factors').where({ factor: 'passkey' }).delete();
}
