import type { Knex } from 'knex';

export async function up(knex: Knex): Promise<void> {
  // One row per enrolled method (a TOTP app, a phone, an inbox). A row without confirmed_at is an enrolment in
  // progress: it never counts as a factor and is purged when it expires.
  await knex.schema.createTable('user_factors', (t) => {
    t.uuid('id').primary().defaultTo(knex.raw('gen_random_uuid()'));
    t.uuid('user_id').notNullable().references('id').inTable('users').onDelete('CASCADE');
    t.text('factor').notNullable();
    t.text('label').notNullable().defaultTo('');
    t.text('secret_sealed');
    t.text('destination');
    t.bigInteger('last_used_step');
    t.timestamp('created_at', { useTz: true }).notNullable().defaultTo(knex.fn.now());
    t.timestamp('confirmed_at', { useTz: true });
    t.timestamp('last_used_at', { useTz: true });
    t.timestamp('pending_expires_at', { useTz: true });
    t.index(['user_id']);
  });

  await knex.schema.alterTable('users', (t) => {
    t.uuid('preferred_factor_id').references('id').inTable('user_factors').onDelete('SET NULL');
  });

  await knex.schema.createTable('recovery_codes', (t) => {
    t.bigIncrements('id').primary();
    t.uuid('user_id').notNullable().references('id').inTable('users').onDelete('CASCADE');
    t.text('code_hash').notNullable();
    t.timestamp('created_at', { useTz: true }).notNullable().defaultTo(knex.fn.now());
    t.timestamp('used_at', { useTz: true });
    t.unique(['user_id', 'code_hash']);
  });

  // A sign-in between its password and its second factor, bound to oidc-provider's interaction.
  await knex.schema.createTable('login_progress', (t) => {
    t.text('interaction_uid').primary();
    t.uuid('user_id').notNullable().references('id').inTable('users').onDelete('CASCADE');
    t.timestamp('password_verified_at', { useTz: true });
    t.integer('mfa_failures').notNullable().defaultTo(0);
    // Enrolment at sign-in: the authenticator being set up, then the amr it earned once confirmed.
    t.uuid('pending_factor_id').references('id').inTable('user_factors').onDelete('SET NULL');
    t.jsonb('verified_amr');
    t.timestamp('expires_at', { useTz: true }).notNullable();
  });
}

export async function down(knex: Knex): Promise<void> {
  await knex.schema.dropTableIfExists('login_progress');
  await knex.schema.dropTableIfExists('recovery_codes');
  await knex.schema.alterTable('users', (t) => t.dropColumn('preferred_factor_id'));
  await knex.schema.dropTableIfExists('user_factors');
}
