import type { Knex } from 'knex';

export async function up(knex: Knex): Promise<void> {
  // Settings become one JSON object each, so that every admin setting has the same shape and schema.
  await knex.raw("update settings set value = jsonb_build_object('enabled', value) where key = 'enforce_mfa' and jsonb_typeof(value) = 'boolean'");

  await knex.schema.alterTable('users', (t) => {
    t.text('time_zone');
  });
  // Keyset pagination of the users table orders by (lower(email), id).
  await knex.raw('create index users_email_lower_id on users (lower(email), id)');

  // An invited user has no password until they open the link they were sent; only a keyed hash of it is kept.
  await knex.schema.createTable('invitations', (t) => {
    t.text('token_hash').primary();
    t.uuid('user_id').notNullable().references('id').inTable('users').onDelete('CASCADE');
    t.uuid('invited_by');
    t.timestamp('created_at', { useTz: true }).notNullable().defaultTo(knex.fn.now());
    t.timestamp('expires_at', { useTz: true }).notNullable();
    t.timestamp('used_at', { useTz: true });
    t.index(['user_id']);
  });

  // "Sign out everywhere" and "revoke sessions" find a user's sessions and grants by account.
  await knex.raw(
    "create index oidc_model_instances_account on oidc_model_instances ((payload->>'accountId')) where model in ('Session', 'Grant')",
  );
  await knex.raw('create index audit_events_actor_occurred on audit_events (actor_id, occurred_at) where actor_id is not null');
  await knex.raw('create index audit_events_outcome_id on audit_events (outcome, id)');
}

export async function down(knex: Knex): Promise<void> {
  await knex.raw('drop index if exists audit_events_outcome_id');
  await knex.raw('drop index if exists audit_events_actor_occurred');
  await knex.raw('drop index if exists oidc_model_instances_account');
  await knex.schema.dropTableIfExists('invitations');
  await knex.raw('drop index if exists users_email_lower_id');
  await knex.schema.alterTable('users', (t) => {
    t.dropColumn('time_zone');
  });
  await knex.raw("update settings set value = value->'enabled' where key = 'enforce_mfa' and jsonb_typeof(value) = 'object'");
}
