import type { FactorRow } from '../db/factors.js';
import type { Queries } from '../db/index.js';
import type { Factor, FactorId, Method } from './factor.js';

/**
 * The enabled factors, in the order the login offers them when the user has no preference. Adding a factor is
 * one line where the registry is built; nothing in the login flow names a factor.
 */
export function createFactorRegistry(queries: Queries, factors: Factor[]) {
  const byId = new Map<FactorId, Factor>(factors.map((factor) => [factor.id, factor]));
  const methodFrom = (row: FactorRow) => byId.get(row.factor as FactorId)?.describe(row);

  return {
    factors,
    get: (id: string) => byId.get(id as FactorId),
    /** The user's usable methods, their preferred one first. */
    async methodsFor(userId: string, preferredId?: string | null): Promise<Method[]> {
      const rows = await queries.factors.listConfirmed(userId);
      const own = await Promise.all(factors.filter((f) => f.listOwnMethods).map((f) => f.listOwnMethods!(userId)));
      const methods = [...rows.map(methodFrom).filter((m): m is Method => m !== undefined), ...own.flat()];
      return methods.sort((a, b) => Number(b.id === preferredId) - Number(a.id === preferredId));
    },
  };
}

export type FactorRegistry = ReturnType<typeof createFactorRegistry>;
