import type { Knex } from 'knex';

export async function up(knex: Knex): Promise<void> {
  await knex.schema.createTable('users', (t) => {
    t.uuid('id').primary().defaultTo(knex.raw('gen_random_uuid()'));
    t.text('email').notNullable();
    t.text('name').notNullable().defaultTo('');
    t.text('password_hash');
    t.text('status').notNullable().defaultTo('active');
    t.jsonb('roles').notNullable().defaultTo('[]');
    t.text('locale');
    t.boolean('email_verified').notNullable().defaultTo(false);
    t.timestamp('created_at', { useTz: true }).notNullable().defaultTo(knex.fn.now());
    t.timestamp('updated_at', { useTz: true }).notNullable().defaultTo(knex.fn.now());
    t.check("status in ('active', 'disabled')", [], 'users_status_check');
  });
  // Emails are unique without regard to case (RFC 5321 local parts are case-sensitive in theory, never in practice).
  await knex.raw('create unique index users_email_lower_unique on users (lower(email))');

  await knex.schema.createTable('clients', (t) => {
    t.text('client_id').primary();
    t.text('client_secret_sealed');
    t.jsonb('metadata').notNullable();
    t.timestamp('created_at', { useTz: true }).notNullable().defaultTo(knex.fn.now());
    t.timestamp('updated_at', { useTz: true }).notNullable().defaultTo(knex.fn.now());
  });

  // One table for every model oidc-provider stores, with the lookup keys it searches by lifted into columns.
  await knex.schema.createTable('oidc_model_instances', (t) => {
    t.text('model').notNullable();
    t.text('id').notNullable();
    t.jsonb('payload').notNullable();
    t.text('grant_id');
    t.text('user_code');
    t.text('uid');
    t.timestamp('expires_at', { useTz: true });
    t.timestamp('consumed_at', { useTz: true });
    t.primary(['model', 'id']);
  });
  await knex.raw('create index oidc_model_instances_grant_id on oidc_model_instances (grant_id) where grant_id is not null');
  await knex.raw('create index oidc_model_instances_uid on oidc_model_instances (model, uid) where uid is not null');
  await knex.raw(
    'create index oidc_model_instances_user_code on oidc_model_instances (model, user_code) where user_code is not null',
  );
  await knex.raw('create index oidc_model_instances_expires_at on oidc_model_instances (expires_at)');

  await knex.schema.createTable('keys', (t) => {
    t.text('kid').primary();
    t.text('kind').notNullable();
    t.text('alg');
    t.jsonb('public_jwk');
    t.text('secret_sealed').notNullable();
    t.timestamp('created_at', { useTz: true }).notNullable().defaultTo(knex.fn.now());
    t.timestamp('activates_at', { useTz: true }).notNullable().defaultTo(knex.fn.now());
    t.timestamp('retired_at', { useTz: true });
    t.timestamp('expires_at', { useTz: true });
    t.check("kind in ('signing', 'cookie')", [], 'keys_kind_check');
  });

  await knex.schema.createTable('throttle_counters', (t) => {
    t.text('key').primary();
    t.integer('failures').notNullable();
    t.timestamp('window_started_at', { useTz: true }).notNullable();
    t.timestamp('locked_until', { useTz: true });
  });

  await knex.schema.createTable('audit_events', (t) => {
    t.bigIncrements('id').primary();
    t.timestamp('occurred_at', { useTz: true }).notNullable().defaultTo(knex.fn.now());
    t.text('action').notNullable();
    t.text('outcome').notNullable();
    t.uuid('actor_id');
    t.uuid('subject_id');
    t.text('client_id');
    t.text('ip');
    t.text('user_agent');
    t.jsonb('details').notNullable().defaultTo('{}');
    t.index(['occurred_at']);
    t.index(['subject_id', 'occurred_at']);
    t.index(['action', 'occurred_at']);
  });

  await knex.schema.createTable('settings', (t) => {
    t.text('key').primary();
    t.jsonb('value').notNullable();
    t.integer('version').notNullable().defaultTo(1);
    t.timestamp('updated_at', { useTz: true }).notNullable().defaultTo(knex.fn.now());
  });
}

export async function down(knex: Knex): Promise<void> {
  for (const table of ['settings', 'audit_events', 'throttle_counters', 'keys', 'oidc_model_instances', 'clients', 'users']) {
    await knex.schema.dropTableIfExists(table);
  }
}
