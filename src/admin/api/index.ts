import type { Context } from 'koa';
import type { UserRow } from '../../db/users.js';
import { accessAdminOperations } from '../../access/admin-api.js';
import type { AccessService } from '../../access/service.js';
import type { ClientStore } from '../../oidc/clients.js';
import type { ProviderHolder } from '../../oidc/provider-holder.js';
import { VERSION } from '../../paths.js';
import type { SecretBox } from '../../security/secret-box.js';
import { auditOperations } from './audit.js';
import { clientOperations } from './clients.js';
import { adminBearer } from './koa-admin-bearer.js';
import { openApiDocument } from './openapi.js';
import { passwordResetOperations } from './password-reset.js';
import type { PasswordResets } from '../../account/password-reset.js';
import { resourceOperations } from './resources.js';
import type { ResourceStore } from '../../resources/resources.js';
import { invokeOperation, mayCall, mountOperations, type Operation, type RawRequest } from './operation.js';
import { settingOperations } from './settings.js';
import { type UserOperationDeps, userOperations } from './users.js';

export const ADMIN_API_PREFIX = '/api/admin';

export interface AdminApiDeps extends UserOperationDeps {
  providers: ProviderHolder;
  clients: ClientStore;
  resources: ResourceStore;
  access: AccessService;
  box: SecretBox;
  builtFactors: readonly string[];
  /** Whether mail reaches users (enrolment at sign-in is then confirmed by email): the settings page says so. */
  mailConfigured: boolean;
  passwordResets: PasswordResets;
}

/** The admin REST API: one list of operations makes both the router and its OpenAPI document. */
export function createAdminApi(deps: AdminApiDeps) {
  const operations = [
    ...userOperations(deps),
    ...passwordResetOperations(deps),
    ...clientOperations(deps),
    ...resourceOperations(deps),
    ...settingOperations(deps),
    ...auditOperations(deps),
    ...accessAdminOperations(deps),
  ];
  const router = mountOperations(ADMIN_API_PREFIX, operations, {
    authenticate: adminBearer(deps.providers, deps.queries, deps.mfa),
    isSiteAdmin: deps.access.isSiteAdmin,
  });
  const document = openApiDocument(operations, { prefix: ADMIN_API_PREFIX, issuer: deps.issuer, version: VERSION });
  router.get('/openapi.json', (ctx) => {
    ctx.set('cache-control', 'public, max-age=300');
    ctx.body = document;
  });
  const byId = new Map(operations.map((op) => [op.id, op]));
  const find = (id: string): Operation => {
    const op = byId.get(id);
    if (!op) throw new Error(`no admin operation ${id}`);
    return op;
  };
  return {
    router,
    operations,
    document,
    builtFactors: deps.builtFactors,
    mailConfigured: deps.mailConfigured,
    /** Runs an operation for the console's signed-in user, with the API's checks. */
    call: (id: string, ctx: Context, raw: RawRequest) => invokeOperation(find(id), ctx, raw, { isSiteAdmin: deps.access.isSiteAdmin }),
    mayCall: (id: string, user: Pick<UserRow, 'roles'>) => mayCall(find(id), user),
  };
}

export type AdminApi = ReturnType<typeof createAdminApi>;
