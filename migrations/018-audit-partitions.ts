import type { Knex } from 'knex';
import { AUDIT_DEFAULT_PARTITION, createMonthsAhead } from '../src/db/audit-partitions.js';

const COLUMNS = `id bigint not null default nextval('audit_events_id_seq'::regclass),
  occurred_at timestamptz not null default now(),
  action text not null,
  outcome text not null,
  actor_id uuid,
  subject_id uuid,
  client_id text,
  ip text,
  user_agent text,
  details jsonb not null default '{}'`;

/** The indexes of the log before partitioning (001, 004, 005, 011), for `down`. */
const FLAT_INDEXES = [
  'create index audit_events_occurred_at_index on audit_events (occurred_at)',
  'create index audit_events_subject_id_occurred_at_index on audit_events (subject_id, occurred_at)',
  'create index audit_events_action_occurred_at_index on audit_events (action, occurred_at)',
  "create index audit_events_doors on audit_events ((details->>'door_id'), occurred_at) where action like 'door.%'",
  'create index audit_events_actor_occurred on audit_events (actor_id, occurred_at) where actor_id is not null',
  'create index audit_events_outcome_id on audit_events (outcome, id)',
  `create unique index audit_events_door_event on audit_events ((details->>'controller_id'), (details->>'event_id'))
     where action = 'door.decision' and (details->>'event_id') is not null`,
];

/**
 * The audit log (and the door decision log in it) becomes partitioned by month, so that retention drops whole months
 * (src/db/audit-partitions.ts). The existing table is not copied: it becomes one partition holding everything up to
 * the end of this month, and is dropped whole once all of it is past the retention.
 */
export async function up(knex: Knex): Promise<void> {
  const { rows } = await knex.raw('select exists (select 1 from audit_events) as any, greatest(now(), (select max(occurred_at) from audit_events)) as upto');
  const { any, upto } = rows[0] as { any: boolean; upto: Date };
  for (const statement of FLAT_INDEXES) await knex.raw(`drop index ${statement.match(/index (\w+) on/)![1]}`);
  await knex.raw('alter table audit_events rename to audit_events_before_partitions');
  await knex.raw('alter table audit_events_before_partitions drop constraint audit_events_pkey');
  await knex.raw('alter table audit_events_before_partitions alter column id drop default');
  await knex.raw(`create table audit_events (${COLUMNS}, primary key (id, occurred_at)) partition by range (occurred_at)`);
  await knex.raw('alter sequence audit_events_id_seq owned by audit_events.id');
  // Audit by user (the admin's search, the account's sign-in history) newest first: one index per side, by id.
  await knex.raw('create index audit_events_subject_id on audit_events (subject_id, id)');
  await knex.raw('create index audit_events_actor_id on audit_events (actor_id, id) where actor_id is not null');
  await knex.raw('create index audit_events_occurred_at on audit_events (occurred_at)');
  await knex.raw('create index audit_events_action_occurred_at on audit_events (action, occurred_at)');
  await knex.raw("create index audit_events_doors on audit_events ((details->>'door_id'), occurred_at) where action like 'door.%'");
  await knex.raw('create index audit_events_outcome_id on audit_events (outcome, id)');
  // A unique index on a partitioned table holds the partition key: a replayed offline event carries its own time.
  await knex.raw(`create unique index audit_events_door_event on audit_events ((details->>'controller_id'), (details->>'event_id'), occurred_at)
    where action = 'door.decision' and (details->>'event_id') is not null`);
  await knex.raw(`create table ${AUDIT_DEFAULT_PARTITION} partition of audit_events default`);
  if (any) {
    const end = new Date(upto);
    const until = new Date(Date.UTC(end.getUTCFullYear(), end.getUTCMonth() + 1, 1)).toISOString();
    await knex.raw(`alter table audit_events attach partition audit_events_before_partitions for values from (minvalue) to ('${until}')`);
  } else {
    await knex.raw('drop table audit_events_before_partitions');
  }
  await knex.transaction((trx) => createMonthsAhead(trx, new Date()));
}

export async function down(knex: Knex): Promise<void> {
  await knex.raw('create table audit_events_flat (like audit_events including defaults)');
  await knex.raw('insert into audit_events_flat select * from audit_events');
  await knex.raw('alter sequence audit_events_id_seq owned by none');
  await knex.raw('drop table audit_events');
  await knex.raw('alter table audit_events_flat rename to audit_events');
  await knex.raw('alter table audit_events add constraint audit_events_pkey primary key (id)');
  await knex.raw('alter sequence audit_events_id_seq owned by audit_events.id');
  for (const statement of FLAT_INDEXES) await knex.raw(statement);
}
