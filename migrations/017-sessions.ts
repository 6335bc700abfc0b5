import type { Knex } from 'knex';

export async function up(knex: Knex): Promise<void> {
  // A user's sessions and grants are found by their account (the account pages, signing a user out everywhere)
  // without reading every payload: the account id is kept beside it, computed by PostgreSQL so no writer can forget.
  await knex.raw("alter table oidc_model_instances add column account_id text generated always as (payload->>'accountId') stored");
  await knex.raw('create index oidc_model_instances_account_id on oidc_model_instances (account_id, model) where account_id is not null');
  // Where a session was last used from, so its owner can recognise it: written when the session is saved.
  await knex.schema.alterTable('oidc_model_instances', (t) => {
    t.text('user_agent');
    t.text('ip');
    t.timestamp('seen_at', { useTz: true });
  });

  // What a user allowed an app, kept beyond any one session or grant: a new browser is not asked again, and the
  // account page lists these as connected apps.
  await knex.schema.createTable('consents', (t) => {
    t.uuid('user_id').notNullable().references('id').inTable('users').onDelete('CASCADE');
    t.text('client_id').notNullable().references('client_id').inTable('clients').onDelete('CASCADE');
    t.specificType('scopes', 'text[]').notNullable();
    t.specificType('claims', 'text[]').notNullable();
    // { resource indicator: [scope, …] } (RFC 8707)
    t.jsonb('resource_scopes').notNullable();
    t.timestamp('granted_at', { useTz: true }).notNullable().defaultTo(knex.fn.now());
    t.timestamp('updated_at', { useTz: true }).notNullable().defaultTo(knex.fn.now());
    t.primary(['user_id', 'client_id']);
  });
}

export async function down(knex: Knex): Promise<void> {
  await knex.schema.dropTableIfExists('consents');
  await knex.raw('drop index if exists oidc_model_instances_account_id');
  await knex.schema.alterTable('oidc_model_instances', (t) => {
    t.dropColumn('seen_at');
    t.dropColumn('ip');
    t.dropColumn('user_agent');
    t.dropColumn('account_id');
  });
}
