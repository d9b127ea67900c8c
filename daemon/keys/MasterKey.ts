import { createHash, randomBytes } from 'node:crypto';
import { closeSync, existsSync, fsyncSync, mkdirSync, openSync, readdirSync, readFileSync, writeSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { protectKey } from './protectKey.js';

export interface MasterKey {
  /** Derived from the key, so it is never stored apart from it. */
  id: string;
  key: Buffer;
}

export class MasterKeyError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'MasterKeyError';
  }
}

/** A key id: 16 hex characters of a hash of the key (tells keys apart, reveals nothing). */
export function keyId(key: Buffer): string {
  return createHash('sha256').update('callrec master key id\0').update(key).digest('hex').slice(0, 16);
}

/** Reads a key file's bytes: 32 raw bytes, or 64 hex characters (a trailing newline allowed). */
export function parseKey(bytes: Buffer, where: string): Buffer {
  const key = Buffer.allocUnsafeSlow(32); // its own memory, not the shared pool, so it can be locked alone
  if (bytes.length === 32) {
    bytes.copy(key);
    return protectKey(key);
  }
  const text = bytes.toString('utf8').trim();
  if (/^[0-9a-fA-F]{64}$/.test(text)) {
    Buffer.from(text, 'hex').copy(key);
    return protectKey(key);
  }
  throw new MasterKeyError(`${where}: not a master key (32 raw bytes or 64 hex characters)`);
}

export interface MasterKeySource {
  /** systemd credential name (read from $CREDENTIALS_DIRECTORY), the default. */
  credential: string;
  /** Or a key file (the demo); `create` makes it 0600 on first start. */
  file?: string;
  create?: boolean;
}

/**
 * The master keys: the current one (the credential named in the config, or the key file) and, during a
 * rotation, the old ones systemd loaded beside it (credentials named `<credential>.*`), which can only
 * unwrap.
 */
export function loadMasterKeys(src: MasterKeySource, env: NodeJS.ProcessEnv = process.env): { current: MasterKey; all: MasterKey[] } {
  if (src.file) {
    if (!existsSync(src.file)) {
      if (!src.create) throw new MasterKeyError(`master key file ${src.file} is missing`);
      createKeyFile(src.file);
    }
    const key = parseKey(readFileSync(src.file), src.file);
    const current = { id: keyId(key), key };
    return { current, all: [current] };
  }
  const dir = env.CREDENTIALS_DIRECTORY;
  if (!dir) throw new MasterKeyError(`no master key: $CREDENTIALS_DIRECTORY is not set (the unit needs LoadCredentialEncrypted=${src.credential}:...), and no keys.masterFile is configured`);
  const path = join(dir, src.credential);
  if (!existsSync(path)) throw new MasterKeyError(`no master key: credential ${src.credential} is not in $CREDENTIALS_DIRECTORY (${dir})`);
  const key = parseKey(readFileSync(path), `credential ${src.credential}`);
  const current = { id: keyId(key), key };
  const all = [current];
  for (const name of readdirSync(dir)) {
    if (!name.startsWith(`${src.credential}.`)) continue;
    const old = parseKey(readFileSync(join(dir, name)), `credential ${name}`);
    if (!all.some((k) => k.key.equals(old))) all.push({ id: keyId(old), key: old });
  }
  return { current, all };
}

function createKeyFile(path: string): void {
  mkdirSync(dirname(path), { recursive: true, mode: 0o700 });
  const fd = openSync(path, 'wx', 0o600);
  try {
    writeSync(fd, `${randomBytes(32).toString('hex')}\n`);
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
}
