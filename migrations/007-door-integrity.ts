import type { Knex } from 'knex';

export async function up(knex: Knex): Promise<void> {
  // A door PIN serves as a web second factor only once its owner opts in, naming the code; changing it drops this.
  await knex.schema.alterTable('access_codes', (t) => {
    t.timestamp('web_enabled_at', { useTz: true });
  });
  // Whether anyone else holds a code is asked at every PIN sign-in: by the code's lookup hash alone.
  await knex.raw('create index access_codes_lookup on access_codes (code_lookup)');
}

export async function down(knex: Knex): Promise<void> {
  await knex.raw('drop index if exists access_codes_lookup');
  await knex.schema.alterTable('access_codes', (t) => {
    t.dropColumn('web_enabled_at');
  });
}
