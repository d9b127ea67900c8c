import { createCipheriv, createDecipheriv, randomBytes } from 'node:crypto';

/** AES-256-GCM sealing of a small secret or record: nonce (12) | ciphertext | tag (16). */
export function seal(key: Buffer, plain: Buffer, aad: string): Buffer {
  const nonce = randomBytes(12);
  const c = createCipheriv('aes-256-gcm', key, nonce);
  c.setAAD(Buffer.from(aad, 'utf8'));
  const body = Buffer.concat([c.update(plain), c.final()]);
  return Buffer.concat([nonce, body, c.getAuthTag()]);
}

export class OpenFailedError extends Error {
  constructor(what: string) {
    super(`${what}: authentication failed (wrong key, or the data was altered)`);
    this.name = 'OpenFailedError';
  }
}

export function open(key: Buffer, sealed: Buffer, aad: string, what: string): Buffer {
  if (sealed.length < 28) throw new OpenFailedError(what);
  const d = createDecipheriv('aes-256-gcm', key, sealed.subarray(0, 12));
  d.setAAD(Buffer.from(aad, 'utf8'));
  d.setAuthTag(sealed.subarray(sealed.length - 16));
  try {
    return Buffer.concat([d.update(sealed.subarray(12, sealed.length - 16)), d.final()]);
  } catch {
    throw new OpenFailedError(what);
  }
}
