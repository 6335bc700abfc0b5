import type { Queries } from '../db/index.js';
import type { Clock } from '../security/clock.js';
import type { SecretBox } from '../security/secret-box.js';

/** All a factor may use: no Koa, no oidc-provider. */
export interface FactorDeps {
  queries: Queries;
  box: SecretBox;
  clock: Clock;
  /** Shown in authenticator apps next to the account name. */
  issuerName: string;
}
