import crypto from 'node:crypto';
import os from 'node:os';
import { Algorithm, hash, verify } from '@node-rs/argon2';

export interface Argon2Parameters {
  memoryCost: number;
  timeCost: number;
  parallelism: number;
}

export interface PasswordCheck {
  valid: boolean;
  /** The stored hash is weaker than the current parameters and should be replaced with `rehash`. */
  needsRehash: boolean;
}

export interface PasswordHasher {
  hash(password: string): Promise<string>;
  verify(storedHash: string | null | undefined, password: string): Promise<PasswordCheck>;
}

function parametersOf(phc: string): Argon2Parameters | undefined {
  const match = /^\$argon2id\$v=19\$m=(\d+),t=(\d+),p=(\d+)\$/.exec(phc);
  if (!match) return undefined;
  return { memoryCost: Number(match[1]), timeCost: Number(match[2]), parallelism: Number(match[3]) };
}

/**
 * At most `slots` calls at once; the rest wait their turn in order. argon2 runs on libuv's thread pool, which also
 * serves file and DNS work: hashes beyond the core count only make every hash (and everything else) slower.
 */
export function limitConcurrency(slots: number) {
  let running = 0;
  const waiting: (() => void)[] = [];
  return async <T>(task: () => Promise<T>): Promise<T> => {
    if (running >= slots) await new Promise<void>((resolve) => waiting.push(resolve));
    else running++;
    try {
      return await task();
    } finally {
      const next = waiting.shift();
      if (next) next();
      else running--;
    }
  };
}

/**
 * argon2id through @node-rs/argon2: a prebuilt binary that hashes on libuv's thread pool, off the event loop, no more
 * hashes at once than there are cores.
 * Unknown users are verified against a dummy hash with the same parameters, so that a missing account takes
 * as long to refuse as a wrong password (no user enumeration by timing).
 */
export function createPasswordHasher(params: Argon2Parameters, slots = os.availableParallelism()): PasswordHasher {
  const options = { algorithm: Algorithm.Argon2id, ...params };
  const inTurn = limitConcurrency(slots);
  let dummyHash: Promise<string> | undefined;
  const dummy = () => (dummyHash ??= inTurn(() => hash(crypto.randomBytes(16).toString('hex'), options)));

  return {
    hash: (password) => inTurn(() => hash(password.normalize('NFKC'), options)),
    async verify(storedHash, password) {
      const target = storedHash ?? (await dummy());
      let valid = false;
      try {
        valid = await inTurn(() => verify(target, password.normalize('NFKC')));
      } catch {
        valid = false;
      }
      if (!storedHash) return { valid: false, needsRehash: false };
      const stored = parametersOf(storedHash);
      const needsRehash =
        !stored ||
        stored.memoryCost < params.memoryCost ||
        stored.timeCost < params.timeCost ||
        stored.parallelism !== params.parallelism;
      return { valid, needsRehash: valid && needsRehash };
    },
  };
}
