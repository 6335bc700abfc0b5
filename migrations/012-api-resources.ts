import type { Knex } from 'knex';

export async function up(knex: Knex): Promise<void> {
  // APIs that accept our access tokens (RFC 8707 resource indicators): a client naming one gets a JWT access token
  // (RFC 9068) for it, which the API verifies against our JWKS without calling us.
  await knex.schema.createTable('api_resources', (t) => {
    t.text('identifier').primary();
    t.text('name').notNullable();
    t.specificType('scopes', 'text[]').notNullable();
    t.integer('access_token_ttl').notNullable();
    t.text('signing_alg').notNullable();
    // jwt: verified by the API alone and never stored; opaque: stored, so it can be revoked and introspected.
    t.text('token_format').notNullable();
    // Machine clients (client credentials, no user) allowed to get tokens for this API; apps acting for a user need
    // the user's consent (or are first party) instead.
    t.specificType('machine_clients', 'text[]').notNullable();
    t.timestamp('created_at', { useTz: true }).notNullable().defaultTo(knex.fn.now());
    t.timestamp('updated_at', { useTz: true }).notNullable().defaultTo(knex.fn.now());
  });
}

export async function down(knex: Knex): Promise<void> {
  await knex.schema.dropTableIfExists('api_resources');
}
