import type { Knex } from 'knex';

export async function up(knex: Knex): Promise<void> {
  // A browser a user chose to remember after a second factor: the public half of a non-extractable key that browser
  // made (WebCrypto, kept in its IndexedDB), sealed to the row like a passkey's so a row planted by a database write
  // alone does not verify. Forgetting a device deletes its row; the audit log keeps the history.
  await knex.schema.createTable('remembered_devices', (t) => {
    t.uuid('id').primary();
    t.uuid('user_id').notNullable().references('id').inTable('users').onDelete('CASCADE');
    t.text('public_key_sealed').notNullable();
    // RFC 7638 thumbprint of the public key: how the page finds the private key it keeps in IndexedDB.
    t.text('key_thumbprint').notNullable();
    t.text('label').notNullable();
    t.timestamp('created_at', { useTz: true }).notNullable();
    t.timestamp('last_used_at', { useTz: true });
    t.timestamp('expires_at', { useTz: true }).notNullable();
    t.index(['user_id']);
  });

  // One outstanding challenge per sign-in, bound to its user and device, taken (deleted) by the one request that
  // answers it: a replayed or concurrent answer finds nothing.
  await knex.schema.createTable('remembered_device_challenges', (t) => {
    t.text('interaction_uid').primary();
    t.uuid('user_id').notNullable().references('id').inTable('users').onDelete('CASCADE');
    t.uuid('device_id').notNullable().references('id').inTable('remembered_devices').onDelete('CASCADE');
    t.text('challenge').notNullable();
    t.timestamp('expires_at', { useTz: true }).notNullable();
  });
}

export async function down(knex: Knex): Promise<void> {
  await knex.schema.dropTableIfExists('remembered_device_challenges');
  await knex.schema.dropTableIfExists('remembered_devices');
}
