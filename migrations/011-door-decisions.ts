import type { Knex } from 'knex';

/** Every table whose rows a door decision reads (users only for their status, and their removal). */
const DECISION_TABLES = ['sites', 'doors', 'door_schedules', 'door_exceptions', 'access_levels', 'access_level_doors', 'access_level_users', 'access_credentials', 'access_codes'];

export async function up(knex: Knex): Promise<void> {
  // A controller's offline decision is stored once, however often it replays its queue: named by its own event id.
  await knex.raw(
    `create unique index audit_events_door_event on audit_events ((details->>'controller_id'), (details->>'event_id'))
      where action = 'door.decision' and (details->>'event_id') is not null`,
  );
  // Each instance decides from a copy of these tables in memory. The application announces its own changes; these
  // triggers announce every committed change however it was made (an import, a cascade from a removed user, a path
  // that forgot), on the change feed's channel, at commit. NOTIFY folds equal payloads within a transaction.
  await knex.raw(`create function latchkey_access_changed() returns trigger language plpgsql as $$
    begin
      perform pg_notify('latchkey_changes', 'access:' || tg_table_name);
      return null;
    end $$`);
  for (const table of DECISION_TABLES) {
    await knex.raw(`create trigger ${table}_access_changed after insert or update or delete or truncate on ${table} for each statement execute function latchkey_access_changed()`);
  }
  await knex.raw(`create trigger users_access_changed after update of status on users for each row
    when (old.status is distinct from new.status) execute function latchkey_access_changed()`);
  await knex.raw('create trigger users_access_removed after delete on users for each statement execute function latchkey_access_changed()');
}

export async function down(knex: Knex): Promise<void> {
  await knex.raw('drop trigger if exists users_access_removed on users');
  await knex.raw('drop trigger if exists users_access_changed on users');
  for (const table of DECISION_TABLES) await knex.raw(`drop trigger if exists ${table}_access_changed on ${table}`);
  await knex.raw('drop function if exists latchkey_access_changed()');
  await knex.raw('drop index if exists audit_events_door_event');
}
