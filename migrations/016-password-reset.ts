import type { Knex } from 'knex';

export async function up(knex: Knex): Promise<void> {
  // Codes mailed to reset a forgotten password: one row a mail, kept as a keyed hash with its own expiry and its own
  // count of tries; `used_at` marks it spent (used, or voided by another code's use).
  await knex.schema.createTable('password_resets', (t) => {
    t.uuid('id').primary();
    t.uuid('user_id').notNullable().references('id').inTable('users').onDelete('CASCADE');
    t.text('code_hash').notNullable();
    t.integer('attempts').notNullable().defaultTo(0);
    // The admin who sent it; null when the user asked from the sign-in page.
    t.uuid('requested_by').references('id').inTable('users').onDelete('SET NULL');
    t.timestamp('created_at', { useTz: true }).notNullable();
    t.timestamp('expires_at', { useTz: true }).notNullable();
    t.timestamp('used_at', { useTz: true });
    t.index(['user_id', 'expires_at']);
    t.index(['expires_at']);
  });
}

export async function down(knex: Knex): Promise<void> {
  await knex.schema.dropTableIfExists('password_resets');
}
