import { bodyParser } from '@koa/bodyparser';
import type { Middleware } from 'koa';
import { AppError } from '../errors.js';

/** Forms and JSON only, small: nothing Latchkey's own pages post is larger than a few kilobytes. */
export function parseBody(): Middleware {
  return bodyParser({
    enableTypes: ['form', 'json'],
    formLimit: '32kb',
    jsonLimit: '256kb',
    onError: (error: Error & { status?: number }) => {
      if (error.status === 413) throw new AppError(413, 'body_too_large', 'request body too large');
      throw new AppError(400, 'malformed_body', 'request body could not be parsed');
    },
  }) as unknown as Middleware;
}
