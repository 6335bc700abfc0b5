import type { Knex } from 'knex';

export async function up(knex: Knex): Promise<void> {
  // One-time codes sent by SMS or email: for a sign-in (bound to its interaction) or to confirm a new destination.
  await knex.schema.createTable('sent_codes', (t) => {
    t.uuid('id').primary();
    t.uuid('user_id').notNullable().references('id').inTable('users').onDelete('CASCADE');
    t.uuid('factor_id').notNullable().references('id').inTable('user_factors').onDelete('CASCADE');
    t.text('interaction_uid');
    t.text('code_hash').notNullable();
    t.integer('attempts').notNullable().defaultTo(0);
    t.timestamp('created_at', { useTz: true }).notNullable();
    t.timestamp('expires_at', { useTz: true }).notNullable();
    t.timestamp('consumed_at', { useTz: true });
    t.index(['factor_id', 'created_at']);
    t.index(['expires_at']);
  });
}

export async function down(knex: Knex): Promise<void> {
  await knex.schema.dropTableIfExists('sent_codes');
}
