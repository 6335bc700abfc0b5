import type { FactorRow, UserFactors } from '../db/factors.js';
import type { Queries } from '../db/index.js';
import type { Factor, FactorId, Method } from './factor.js';

/**
 * The enabled factors, in the order the login offers them when the user has no preference. Adding a factor is
 * one line where the registry is built; nothing in the login flow names a factor.
 */
export function createFactorRegistry(queries: Queries, factors: Factor[]) {
  const byId = new Map<FactorId, Factor>(factors.map((factor) => [factor.id, factor]));
  const methodFrom = (row: FactorRow) => byId.get(row.factor as FactorId)?.describe(row);
  /** Methods the user enrolled themselves (TOTP, SMS, email); from `known` where this request already read them. */
  const enrolledMethods = async (userId: string, known?: UserFactors): Promise<Method[]> =>
    (known?.confirmed ?? (await queries.factors.listConfirmed(userId))).map(methodFrom).filter((m): m is Method => m !== undefined);
  /** Methods an admin issued to the user (door PINs), which factors list themselves. */
  const issuedMethods = async (userId: string, wanted: (factor: Factor) => boolean = () => true, known?: UserFactors): Promise<Method[]> =>
    (await Promise.all(factors.filter((f) => f.listOwnMethods && wanted(f)).map((f) => f.listOwnMethods!(userId, known)))).flat();

  return {
    factors,
    get: (id: string) => byId.get(id as FactorId),
    /**
     * The user's usable methods, their preferred one first; with `wanted`, only methods of the factors it accepts, and
     * a store no such factor keeps its methods in is not read (a second step that takes no PIN reads no door code).
     */
    async methodsFor(userId: string, preferredId?: string | null, wanted: (factor: Factor) => boolean = () => true, known?: UserFactors): Promise<Method[]> {
      const readEnrolled = factors.some((f) => !f.listOwnMethods && wanted(f));
      const [enrolled, issued] = await Promise.all([readEnrolled ? enrolledMethods(userId, known) : [], issuedMethods(userId, wanted, known)]);
      return [...enrolled, ...issued]
        .filter((m) => {
          const factor = byId.get(m.factor);
          return factor !== undefined && wanted(factor);
        })
        .sort((a, b) => Number(b.id === preferredId) - Number(a.id === preferredId));
    },
    enrolledMethods,
    issuedMethods,
  };
}

export type FactorRegistry = ReturnType<typeof createFactorRegistry>;
