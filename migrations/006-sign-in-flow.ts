import type { Knex } from 'knex';

export async function up(knex: Knex): Promise<void> {
  // The sign-in's step is stored, not inferred from which columns happen to be set: each request is accepted only in
  // its own step, and a write is conditional on the step it was read in.
  await knex.schema.alterTable('login_progress', (t) => {
    t.text('step');
    // Enrolment at sign-in, where mail is configured: a keyed hash of the code sent to the account's inbox.
    t.text('email_code_hash');
    t.timestamp('email_code_expires_at', { useTz: true });
    // Decided with the password: whether the door PIN answers this sign-in's second step.
    t.boolean('pin_accepted').notNullable().defaultTo(false);
  });
  await knex.raw(
    `update login_progress set step = case when verified_amr is not null then 'verified'
                                          when pending_factor_id is not null then 'enrolling'
                                          else 'second_factor' end`,
  );
  await knex.raw('alter table login_progress alter column step set not null');
  await knex.raw(
    "alter table login_progress add constraint login_progress_step_check check (step in ('second_factor', 'confirm_email', 'enrolling', 'verified', 'finished'))",
  );
}

export async function down(knex: Knex): Promise<void> {
  // A finished sign-in had no row before this migration.
  await knex('login_progress').where({ step: 'finished' }).delete();
  await knex.schema.alterTable('login_progress', (t) => {
    t.dropChecks(['login_progress_step_check']);
    t.dropColumn('pin_accepted');
    t.dropColumn('email_code_expires_at');
    t.dropColumn('email_code_hash');
    t.dropColumn('step');
  });
}
