import { randomBytes, scrypt as scryptCb, timingSafeEqual, type ScryptOptions } from 'node:crypto';

/**
 * Password hashing: scrypt (RFC 7914) with N = 2^15, r = 8, p = 1, a 16-byte random salt and a 32-byte
 * hash: 32 MiB and ~60-100 ms per check on the appliance's CPU, so a stolen user table costs an attacker
 * the same per guess. Stored as `scrypt$N$r$p$salt$hash` (base64url), so parameters can be raised later
 * and old hashes still verify.
 */
const PARAMS = { N: 2 ** 15, r: 8, p: 1 } as const;
const KEY_BYTES = 32;

function scrypt(password: string, salt: Buffer, p: { N: number; r: number; p: number }): Promise<Buffer> {
  const opts: ScryptOptions = { N: p.N, r: p.r, p: p.p, maxmem: 256 * p.N * p.r * p.p };
  return new Promise((resolve, reject) => scryptCb(password.normalize('NFKC'), salt, KEY_BYTES, opts, (err, key) => (err ? reject(err) : resolve(key))));
}

export async function hashPassword(password: string): Promise<string> {
  const salt = randomBytes(16);
  const key = await scrypt(password, salt, PARAMS);
  return ['scrypt', PARAMS.N, PARAMS.r, PARAMS.p, salt.toString('base64url'), key.toString('base64url')].join('$');
}

export async function verifyPassword(password: string, stored: string): Promise<boolean> {
  const [kind, n, r, p, salt, hash] = stored.split('$');
  if (kind !== 'scrypt' || !salt || !hash) return false;
  const want = Buffer.from(hash, 'base64url');
  const got = await scrypt(password, Buffer.from(salt, 'base64url'), { N: Number(n), r: Number(r), p: Number(p) });
  return got.length === want.length && timingSafeEqual(got, want);
}

let dummy: Promise<string> | null = null;
/** A hash of no password anyone has: checked when the user name is unknown, so both cases take as long. */
export const dummyHash = (): Promise<string> => (dummy ??= hashPassword(randomBytes(24).toString('base64')));

/** Short and common passwords that pass the length rule but fall first in any guessing list. */
const COMMON = new Set(['password1234', '123456789012', 'qwertyuiop12', 'letmein12345', 'salasana1234', 'losenord1234', 'welcome12345', 'changeme1234']);

export const PASSWORD_MIN = 12;
export const PASSWORD_MAX = 256;

/**
 * The password policy (NIST SP 800-63B style: length over composition rules): 12-256 characters, not
 * one repeated character, not containing the user name, not a well-known password. Returns what is
 * wrong, or null.
 */
export function passwordProblem(password: string, username: string): string | null {
  const chars = [...password.normalize('NFKC')];
  if (chars.length < PASSWORD_MIN) return `a password needs at least ${PASSWORD_MIN} characters`;
  if (chars.length > PASSWORD_MAX) return `a password has at most ${PASSWORD_MAX} characters`;
  if (new Set(chars).size < 4) return 'a password needs more than a few different characters';
  if (password.toLowerCase().includes(username.toLowerCase())) return 'a password must not contain the user name';
  if (COMMON.has(password.toLowerCase())) return 'that password is on the list of common passwords';
  return null;
}
