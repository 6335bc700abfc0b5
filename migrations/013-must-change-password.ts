import type { Knex } from 'knex';

export async function up(knex: Knex): Promise<void> {
  // Set on a password someone else chose (the first admin's generated one, a reset from the CLI): the console sends
  // its user to choose their own before anything else.
  await knex.schema.alterTable('users', (t) => {
    t.boolean('must_change_password').notNullable().defaultTo(false);
  });
}

export async function down(knex: Knex): Promise<void> {
  await knex.schema.alterTable('users', (t) => {
    t.dropColumn('must_change_password');
  });
}
