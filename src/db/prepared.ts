import { createHash } from 'node:crypto';

/**
 * Query options that have PostgreSQL parse and plan a statement once per connection instead of on every run: for
 * the fixed statements every sign-in, token request and refresh sends. The name is a hash of the SQL text, so one
 * name always stands for one text, however the text was put together.
 */
export const prepared = (sql: string) => ({ name: `lk_${createHash('sha256').update(sql).digest('base64url').slice(0, 24)}` });
