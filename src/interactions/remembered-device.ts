import type Router from '@koa/router';
import type { Context } from 'koa';
import { z } from 'zod';
import { describeDevice } from '../account/sessions.js';
import type { SignInRow } from '../db/sign-ins.js';
import type { UserRow } from '../db/users.js';
import { AppError } from '../errors.js';
import { publicKeySchema, type RememberedDevices, signatureSchema, type SignInView } from '../mfa/remembered-device/index.js';
import type { Actor } from '../mfa/service.js';

declare module 'koa' {
  interface DefaultState {
    /** The sign-in's client said "never remember devices" (set where the interaction is read). */
    neverRememberDevices?: boolean;
    /** This request already answered a remembered-device challenge: the page it renders offers none again. */
    rememberedDeviceAnswered?: boolean;
  }
}

/**
 * Names the browser's remembered devices, one per user who ticked "remember" in it (a shared computer). A name is
 * worth nothing alone: each device answers only with a signature by the key its browser keeps (see views/static/
 * remembered-device.js), so a copied cookie gets a second-factor page like any other.
 */
const COOKIE = 'lk_device';
const MAX_DEVICES_PER_BROWSER = 5;
const deviceId = z.uuid();

export function rememberedDeviceIds(ctx: Context): string[] {
  // Not signed: a name proves nothing, and a signature would only tie remembering to the cookie keys' rotation.
  const value = ctx.cookies.get(COOKIE, { signed: false }) ?? '';
  return value.split('.').filter((id) => deviceId.safeParse(id).success).slice(0, MAX_DEVICES_PER_BROWSER);
}

function addToCookie(ctx: Context, id: string, days: number) {
  const ids = [id, ...rememberedDeviceIds(ctx).filter((other) => other !== id)].slice(0, MAX_DEVICES_PER_BROWSER);
  ctx.cookies.set(COOKIE, ids.join('.'), { httpOnly: true, sameSite: 'lax', secure: ctx.secure, signed: false, maxAge: days * 86_400_000, overwrite: true });
}

/**
 * The public key the page made when the user ticked "remember this browser" (a JWK, as JSON), sent with the second
 * factor's form; empty when the box is not ticked or the page ran no script.
 */
export const rememberKeyField = z
  .union([
    z.literal('').transform(() => undefined),
    z
      .string()
      .max(1024)
      .transform((text, ctx) => {
        try {
          return JSON.parse(text) as unknown;
        } catch {
          ctx.addIssue({ code: 'custom', message: 'expected a JSON Web Key' });
          return z.NEVER;
        }
      })
      .pipe(publicKeySchema),
  ])
  .optional();

const answerSchema = z.object({ device: deviceId, signature: signatureSchema });

type BoundSignIn = { row: SignInRow; user: UserRow };
type SecondStepOutcome = { ok: true; amr: string[] } | { ok: false; locked: boolean; retryAfterSeconds?: number };

/** What this route needs of the sign-in's router: the same second-step machinery every factor goes through. */
export interface SecondStepFlow {
  /**
   * Reads the interaction, loads its sign-in in a step that accepts `action`, takes one of its tries, runs `verify`,
   * and finishes the sign-in or renders the second-factor page again with `error`.
   */
  answerSecondStep(
    ctx: Context,
    action: 'remembered_device',
    verify: (answer: { signIn: BoundSignIn; actor: Actor }) => Promise<SecondStepOutcome>,
    error: string,
  ): Promise<void>;
}

export function createRememberedDeviceRoutes(devices: RememberedDevices) {
  const view = (ctx: Context, row: SignInRow): SignInView => ({
    interactionUid: row.interaction_uid,
    pinAccepted: row.pin_accepted,
    phishingResistant: row.phishing_resistant,
    clientForbids: ctx.state.neverRememberDevices === true,
  });

  return {
    /** For the second-factor page: whether to offer "remember this browser", and this browser's challenge if any. */
    async pageData(ctx: Context, signIn: BoundSignIn) {
      const signInView = view(ctx, signIn.row);
      return {
        days: await devices.rememberDays(signIn.user, signInView),
        offer: ctx.state.rememberedDeviceAnswered ? undefined : await devices.offer(signIn.user, signInView, rememberedDeviceIds(ctx)),
      };
    },

    /** After a second factor passed: remembers the browser whose page sent a key, if this sign-in may. */
    async rememberAfterSecondFactor(ctx: Context, signIn: BoundSignIn, publicKey: z.output<typeof publicKeySchema> | undefined, actor: Actor) {
      if (!publicKey) return;
      const remembered = await devices.remember(signIn.user, view(ctx, signIn.row), publicKey, describeDevice(ctx.get('user-agent') || null), actor);
      if (remembered) addToCookie(ctx, remembered.id, remembered.days);
    },

    register(router: Router, flow: SecondStepFlow) {
      // The page's script posts here on its own when it finds the key; a page without script never does.
      router.post('/remembered-device', async (ctx) => {
        const form = answerSchema.safeParse(ctx.request.body);
        if (!form.success) throw new AppError(400, 'malformed_body', 'invalid form', form.error.issues[0]?.path.join('.'));
        ctx.state.rememberedDeviceAnswered = true;
        await flow.answerSecondStep(
          ctx,
          'remembered_device',
          async ({ signIn, actor }) => {
            const outcome = await devices.verify(signIn.user, view(ctx, signIn.row), form.data, actor);
            return outcome.ok ? outcome : { ok: false, locked: outcome.reason === 'throttled', retryAfterSeconds: outcome.retryAfterSeconds };
          },
          'mfa.remembered_device.failed',
        );
      });
    },
  };
}

export type RememberedDeviceRoutes = ReturnType<typeof createRememberedDeviceRoutes>;
