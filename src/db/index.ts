import { createAccessQueries } from './access.js';
import { type AuditEvent, createAuditQueries } from './audit.js';
import { createBypassCodeQueries } from './bypass-codes.js';
import { createClientQueries } from './clients.js';
import type { Database } from './connect.js';
import { createConsentQueries } from './consents.js';
import { createInvitationQueries } from './invitations.js';
import { createKeyQueries } from './keys.js';
import { createEnrolmentGraceQueries } from './enrolment-grace.js';
import { createFactorQueries, createRecoveryCodeQueries } from './factors.js';
import { createOidcModelQueries } from './oidc-models.js';
import { createPasskeyQueries } from './passkeys.js';
import { createPasswordResetQueries } from './password-resets.js';
import { createRememberedDeviceQueries } from './remembered-devices.js';
import { createResourceQueries } from './resources.js';
import { createSentCodeQueries } from './sent-codes.js';
import { createSettingQueries } from './settings.js';
import { createSignInQueries } from './sign-ins.js';
import { createThrottleQueries } from './throttle.js';
import { createUserQueries } from './users.js';

/** Every table's queries on one object: the only way the rest of the code reaches the database. */
export function createQueries(db: Database, hooks: { onAudit?: (event: AuditEvent) => void } = {}) {
  const audit = createAuditQueries(db, hooks.onAudit);
  return {
    db,
    users: createUserQueries(db),
    clients: createClientQueries(db),
    oidcModels: createOidcModelQueries(db),
    keys: createKeyQueries(db),
    throttle: createThrottleQueries(db, audit),
    audit,
    factors: createFactorQueries(db),
    recoveryCodes: createRecoveryCodeQueries(db),
    signIns: createSignInQueries(db),
    settings: createSettingQueries(db),
    sentCodes: createSentCodeQueries(db),
    access: createAccessQueries(db),
    invitations: createInvitationQueries(db),
    passkeys: createPasskeyQueries(db),
    resources: createResourceQueries(db),
    consents: createConsentQueries(db),
    passwordResets: createPasswordResetQueries(db),
    bypassCodes: createBypassCodeQueries(db),
    enrolmentGrace: createEnrolmentGraceQueries(db),
    rememberedDevices: createRememberedDeviceQueries(db),
    ping: async () => {
      await db.raw('select 1');
    },
  };
}

export type Queries = ReturnType<typeof createQueries>;
