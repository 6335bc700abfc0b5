import crypto from 'node:crypto';
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
 * argon2id through @node-rs/argon2: a prebuilt binary that hashes on libuv's thread pool, off the event loop.
 * Unknown users are verified against a dummy hash with the same parameters, so that a missing account takes
 * as long to refuse as a wrong password (no user enumeration by timing).
 */
export function createPasswordHasher(params: Argon2Parameters): PasswordHasher {
  const options = { algorithm: Algorithm.Argon2id, ...params };
  let dummyHash: Promise<string> | undefined;
  const dummy = () => (dummyHash ??= hash(crypto.randomBytes(16).toString('hex'), options));

  return {
    hash: (password) => hash(password.normalize('NFKC'), options),
    async verify(storedHash, password) {
      const target = storedHash ?? (await dummy());
      let valid = false;
      try {
        valid = await verify(target, password.normalize('NFKC'));
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
