import type { Knex } from 'knex';

const VERSIONED = ['sites', 'doors', 'door_schedules', 'door_exceptions', 'access_levels', 'access_controllers'] as const;

export async function up(knex: Knex): Promise<void> {
  // Every editable door object carries a version: an update names the version it read (If-Match), so two admins
  // editing one schedule cannot silently overwrite each other.
  for (const table of VERSIONED) {
    await knex.schema.alterTable(table, (t) => {
      t.integer('version').notNullable().defaultTo(1);
    });
  }
  // A suspended credential is kept (a lost card may turn up) but opens nothing, with its own reason in the log.
  // `nearby` is the phone app's Nearby Unlock: a credential of its own, opening two-factor doors without a code.
  await knex.schema.alterTable('access_credentials', (t) => {
    t.timestamp('suspended_at', { useTz: true });
  });
  await knex.raw('alter table access_credentials drop constraint access_credentials_kind_check');
  await knex.raw("alter table access_credentials add constraint access_credentials_kind_check check (kind in ('card', 'nfc', 'ble', 'nearby'))");
  // Deleting a schedule or a door asks which doors and levels refer to it: by index, not by scanning.
  await knex.raw('create index if not exists doors_schedule on doors (schedule_id) where schedule_id is not null');
  await knex.raw('create index if not exists access_levels_schedule on access_levels (schedule_id) where schedule_id is not null');
  await knex.raw('create index if not exists access_level_doors_door on access_level_doors (door_id)');
}

export async function down(knex: Knex): Promise<void> {
  await knex.raw('drop index if exists access_level_doors_door');
  await knex.raw('drop index if exists access_levels_schedule');
  await knex.raw('drop index if exists doors_schedule');
  await knex('access_credentials').where({ kind: 'nearby' }).delete();
  await knex.raw('alter table access_credentials drop constraint access_credentials_kind_check');
  await knex.raw("alter table access_credentials add constraint access_credentials_kind_check check (kind in ('card', 'nfc', 'ble'))");
  await knex.schema.alterTable('access_credentials', (t) => {
    t.dropColumn('suspended_at');
  });
  for (const table of [...VERSIONED].reverse()) {
    await knex.schema.alterTable(table, (t) => {
      t.dropColumn('version');
    });
  }
}
