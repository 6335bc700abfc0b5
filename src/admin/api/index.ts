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
import { mountOperations } from './operation.js';
import { settingOperations } from './settings.js';
import { type UserOperationDeps, userOperations } from './users.js';

export const ADMIN_API_PREFIX = '/api/admin';

export interface AdminApiDeps extends UserOperationDeps {
  providers: ProviderHolder;
  clients: ClientStore;
  access: AccessService;
  box: SecretBox;
  builtFactors: readonly string[];
}

/** The admin REST API: one list of operations makes both the router and its OpenAPI document. */
export function createAdminApi(deps: AdminApiDeps) {
  const operations = [
    ...userOperations(deps),
    ...clientOperations(deps),
    ...settingOperations(deps),
    ...auditOperations(deps),
    ...accessAdminOperations(deps),
  ];
  const router = mountOperations(ADMIN_API_PREFIX, operations, {
    authenticate: adminBearer(deps.providers, deps.queries),
    isSiteAdmin: deps.access.isSiteAdmin,
  });
  const document = openApiDocument(operations, { prefix: ADMIN_API_PREFIX, issuer: deps.issuer, version: VERSION });
  router.get('/openapi.json', (ctx) => {
    ctx.set('cache-control', 'public, max-age=300');
    ctx.body = document;
  });
  return { router, operations, document };
}
