import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';

export interface ApiKeySource {
  key: string;
  /** Where the key came from: the environment, or the key file's path. */
  origin: 'environment' | string;
  generated: boolean;
}

/** The key file lives beside the database, so one appliance's data and key travel together. */
export const apiKeyPath = (dbPath: string): string => path.join(path.dirname(dbPath), 'api-key');

/**
 * NFTFARM_API_KEY wins; otherwise the key file is read, or created with a random key on
 * first start. The file is written owner-only (0600) before the key is in it.
 */
export function resolveApiKey(envKey: string | null, dbPath: string): ApiKeySource {
  if (envKey !== null) return { key: envKey, origin: 'environment', generated: false };
  const file = apiKeyPath(dbPath);
  fs.mkdirSync(path.dirname(file), { recursive: true });
  try {
    const key = fs.readFileSync(file, 'utf8').trim();
    if (key.length < 8) throw new Error(`the API key file ${file} holds no usable key (8 characters at least); fix or delete it`);
    // A key file others can read is a leaked key: tighten it rather than serve with it as is.
    if ((fs.statSync(file).mode & 0o077) !== 0) fs.chmodSync(file, 0o600);
    return { key, origin: file, generated: false };
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
  }
  const key = crypto.randomBytes(24).toString('base64url');
  // 'wx': two processes starting at once must not overwrite each other's key.
  fs.writeFileSync(file, `${key}\n`, { mode: 0o600, flag: 'wx' });
  return { key, origin: file, generated: true };
}

/** Constant-time comparison; hashing first makes the lengths equal without leaking them. */
export function keysMatch(given: string, expected: string): boolean {
  const a = crypto.createHash('sha256').update(given).digest();
  const b = crypto.createHash('sha256').update(expected).digest();
  return crypto.timingSafeEqual(a, b);
}
