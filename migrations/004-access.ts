import type { Knex } from 'knex';

export async function up(knex: Knex): Promise<void> {
  // A door PIN is a second factor that lives outside user_factors, so "preferred" names a method, not a row.
  await knex.schema.alterTable('users', (t) => t.dropForeign(['preferred_factor_id']));
  await knex.raw('alter table users alter column preferred_factor_id type text');

  await knex.schema.createTable('sites', (t) => {
    t.uuid('id').primary().defaultTo(knex.raw('gen_random_uuid()'));
    t.text('name').notNullable();
    t.text('time_zone').notNullable();
    t.timestamp('created_at', { useTz: true }).notNullable().defaultTo(knex.fn.now());
  });
  await knex.schema.createTable('site_admins', (t) => {
    t.uuid('site_id').notNullable().references('id').inTable('sites').onDelete('CASCADE');
    t.uuid('user_id').notNullable().references('id').inTable('users').onDelete('CASCADE');
    t.primary(['site_id', 'user_id']);
  });
  // Windows: [{ days: [0-6], start: minute, end: minute, mode }], in the site's local time.
  await knex.schema.createTable('door_schedules', (t) => {
    t.uuid('id').primary().defaultTo(knex.raw('gen_random_uuid()'));
    t.uuid('site_id').notNullable().references('id').inTable('sites').onDelete('CASCADE');
    t.text('name').notNullable();
    t.jsonb('windows').notNullable();
  });
  await knex.schema.createTable('doors', (t) => {
    t.uuid('id').primary().defaultTo(knex.raw('gen_random_uuid()'));
    t.uuid('site_id').notNullable().references('id').inTable('sites').onDelete('CASCADE');
    t.text('name').notNullable();
    t.boolean('has_badge_reader').notNullable().defaultTo(true);
    t.boolean('has_keypad').notNullable().defaultTo(false);
    t.boolean('in_out').notNullable().defaultTo(false);
    t.uuid('schedule_id').references('id').inTable('door_schedules').onDelete('SET NULL');
  });
  await knex.schema.createTable('door_exceptions', (t) => {
    t.uuid('id').primary().defaultTo(knex.raw('gen_random_uuid()'));
    t.uuid('door_id').notNullable().references('id').inTable('doors').onDelete('CASCADE');
    t.date('day').notNullable();
    t.text('name').notNullable().defaultTo('');
    t.jsonb('windows').notNullable();
    t.unique(['door_id', 'day']);
  });
  await knex.schema.createTable('access_levels', (t) => {
    t.uuid('id').primary().defaultTo(knex.raw('gen_random_uuid()'));
    t.uuid('site_id').notNullable().references('id').inTable('sites').onDelete('CASCADE');
    t.text('name').notNullable();
    t.uuid('schedule_id').references('id').inTable('door_schedules').onDelete('SET NULL');
  });
  await knex.schema.createTable('access_level_doors', (t) => {
    t.uuid('level_id').notNullable().references('id').inTable('access_levels').onDelete('CASCADE');
    t.uuid('door_id').notNullable().references('id').inTable('doors').onDelete('CASCADE');
    t.primary(['level_id', 'door_id']);
  });
  await knex.schema.createTable('access_level_users', (t) => {
    t.uuid('level_id').notNullable().references('id').inTable('access_levels').onDelete('CASCADE');
    t.uuid('user_id').notNullable().references('id').inTable('users').onDelete('CASCADE');
    t.primary(['level_id', 'user_id']);
    t.index(['user_id']);
  });
  await knex.schema.createTable('access_controllers', (t) => {
    t.uuid('id').primary().defaultTo(knex.raw('gen_random_uuid()'));
    t.uuid('site_id').notNullable().references('id').inTable('sites').onDelete('CASCADE');
    t.text('name').notNullable();
    t.text('secret_hash').notNullable();
  });
  // Cards and mobile credentials: NFC acts as a card; a Bluetooth unlock is recorded but never counts as one.
  await knex.schema.createTable('access_credentials', (t) => {
    t.uuid('id').primary().defaultTo(knex.raw('gen_random_uuid()'));
    t.uuid('user_id').notNullable().references('id').inTable('users').onDelete('CASCADE');
    t.text('kind').notNullable();
    t.text('identifier').notNullable();
    t.timestamp('created_at', { useTz: true }).notNullable().defaultTo(knex.fn.now());
    t.unique(['identifier']);
    t.check("kind in ('card', 'nfc', 'ble')", [], 'access_credentials_kind_check');
  });
  // MFA codes (several per user, may be shared) and entry codes (one per user, unique: they identify the user).
  await knex.schema.createTable('access_codes', (t) => {
    t.uuid('id').primary().defaultTo(knex.raw('gen_random_uuid()'));
    t.uuid('user_id').notNullable().references('id').inTable('users').onDelete('CASCADE');
    t.text('kind').notNullable();
    t.text('code_sealed').notNullable();
    t.text('code_lookup').notNullable();
    t.integer('length').notNullable();
    t.timestamp('created_at', { useTz: true }).notNullable().defaultTo(knex.fn.now());
    t.check("kind in ('mfa', 'entry')", [], 'access_codes_kind_check');
    t.index(['user_id', 'code_lookup']);
  });
  await knex.raw("create unique index access_codes_entry_unique on access_codes (code_lookup) where kind = 'entry'");
  await knex.raw("create unique index access_codes_one_entry_per_user on access_codes (user_id) where kind = 'entry'");
  // A card scanned at a two-factor door, waiting for its code on the keypad.
  await knex.schema.createTable('door_pending_codes', (t) => {
    t.uuid('door_id').primary().references('id').inTable('doors').onDelete('CASCADE');
    t.uuid('user_id').notNullable().references('id').inTable('users').onDelete('CASCADE');
    t.uuid('credential_id').notNullable().references('id').inTable('access_credentials').onDelete('CASCADE');
    t.integer('attempts').notNullable().defaultTo(0);
    t.timestamp('expires_at', { useTz: true }).notNullable();
  });
  await knex.raw("create index audit_events_doors on audit_events ((details->>'door_id'), occurred_at) where action like 'door.%'");
}

export async function down(knex: Knex): Promise<void> {
  await knex.raw('drop index if exists audit_events_doors');
  for (const table of ['door_pending_codes', 'access_codes', 'access_credentials', 'access_controllers', 'access_level_users', 'access_level_doors', 'access_levels', 'door_exceptions', 'doors', 'door_schedules', 'site_admins', 'sites']) {
    await knex.schema.dropTableIfExists(table);
  }
  await knex.raw("update users set preferred_factor_id = null where preferred_factor_id !~ '^[0-9a-f-]{36}$' or preferred_factor_id not in (select id::text from user_factors)");
  await knex.raw('alter table users alter column preferred_factor_id type uuid using preferred_factor_id::uuid');
  await knex.schema.alterTable('users', (t) => t.foreign('preferred_factor_id').references('id').inTable('user_factors').onDelete('SET NULL'));
}
