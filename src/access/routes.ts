import Router from '@koa/router';
import { AppError } from '../errors.js';
import { parseBody } from '../security/koa-body.js';
import { type AtDoor, type DoorDecisions, keypadSchema, offlineEventsSchema, scanSchema } from './decisions.js';
import type { AccessService } from './service.js';

/** The door controllers' API: each authenticates with its own token and may ask only about its own site's doors. */
export function createControllerRouter(deps: { access: AccessService; doors: DoorDecisions }) {
  const { access, doors } = deps;
  const controllers = new Router({ prefix: '/api/access/v1' });
  controllers.use(parseBody(), async (ctx, next) => {
    const match = /^Bearer (\S{10,200})$/.exec(ctx.get('authorization'));
    const controller = match ? await access.authenticateController(match[1]!) : undefined;
    if (!controller) {
      ctx.set('www-authenticate', 'Bearer');
      throw new AppError(401, 'invalid_token', 'a controller token is required');
    }
    ctx.state.controller = controller;
    // Each decision checks that its door is of this site, in the same read of the facts that it decides from.
    ctx.state.atDoor = { controllerId: controller.id, siteId: controller.site_id } satisfies AtDoor;
    await next();
  });
  // Who asks comes from the token, never from the body: limits per controller count the caller itself.
  controllers.post('/credential', async (ctx) => {
    ctx.body = await doors.presentCredential(scanSchema.parse(ctx.request.body), ctx.state.atDoor as AtDoor);
  });
  controllers.post('/keypad', async (ctx) => {
    ctx.body = await doors.enterCode(keypadSchema.parse(ctx.request.body), ctx.state.atDoor as AtDoor);
  });
  controllers.post('/events', async (ctx) => {
    ctx.body = await doors.recordOfflineEvents(offlineEventsSchema.parse(ctx.request.body), ctx.state.controller as { id: string; site_id: string });
  });

  return controllers;
}
