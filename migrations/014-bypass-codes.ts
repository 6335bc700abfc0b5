import type { Knex } from 'knex';

export async function up(knex: Knex): Promise<void> {
  // A helpdesk's one-time way past a lost second factor: at most one live code per user (a new one replaces it), kept
  // as a keyed hash bound to its user, with who issued it and why. Taking it is one conditional delete: single use.
  await knex.schema.createTable('bypass_codes', (t) => {
    t.uuid('user_id').primary().references('id').inTable('users').onDelete('CASCADE');
    t.text('code_hash').notNullable();
    t.uuid('issued_by').references('id').inTable('users').onDelete('SET NULL');
    t.text('reason').notNullable();
    t.timestamp('expires_at', { useTz: true }).notNullable();
    t.timestamp('created_at', { useTz: true }).notNullable().defaultTo(knex.fn.now());
  });
  // Enrolment grace under enforcement: when a user first chose "later", and how many sign-ins they postponed since.
  await knex.schema.createTable('enrolment_grace', (t) => {
    t.uuid('user_id').primary().references('id').inTable('users').onDelete('CASCADE');
    t.timestamp('started_at', { useTz: true }).notNullable();
    t.integer('sign_ins').notNullable().defaultTo(0);
  });
}

export async function down(knex: Knex): Promise<void> {
  await knex.schema.dropTableIfExists('enrolment_grace');
  await knex.schema.dropTableIfExists('bypass_codes');
}
