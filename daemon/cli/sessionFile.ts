import { createHash } from 'node:crypto';
import { existsSync, lstatSync, mkdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

export interface SavedSession {
  socket: string;
  token: string;
  username: string;
  expiresAt: string;
}

/**
 * Where `callrec login` keeps its session: the user's runtime directory ($XDG_RUNTIME_DIR, else
 * /run/user/UID: a tmpfs only that user can enter, emptied at logout), one 0600 file per daemon socket.
 * Without either (root through sudo or su, a container), /tmp/callrec-UID, made 0700, and used only
 * while it is a real folder of ours that no one else can enter.
 */
export function sessionFile(socket: string, env: NodeJS.ProcessEnv = process.env): string {
  const uid = process.getuid?.() ?? 0;
  const name = `session-${createHash('sha256').update(socket).digest('hex').slice(0, 16)}.json`;
  const runtime = env.XDG_RUNTIME_DIR || `/run/user/${uid}`;
  if (existsSync(runtime)) return join(runtime, 'callrec', name);
  const dir = `/tmp/callrec-${uid}`;
  try {
    mkdirSync(dir, { mode: 0o700 });
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
  }
  const st = lstatSync(dir);
  if (!st.isDirectory() || st.uid !== uid || (st.mode & 0o077) !== 0) throw new Error(`${dir} is not a private folder of this user (no $XDG_RUNTIME_DIR or /run/user/${uid} either): set XDG_RUNTIME_DIR`);
  return join(dir, name);
}

export function loadSession(socket: string): SavedSession | null {
  let file: string;
  try {
    file = sessionFile(socket);
  } catch {
    return null;
  }
  if (!existsSync(file)) return null;
  // Only our own regular file: a planted symlink or someone else's file is not a session.
  const st = lstatSync(file);
  if (!st.isFile() || st.uid !== (process.getuid?.() ?? st.uid) || (st.mode & 0o077) !== 0) return null;
  try {
    const s = JSON.parse(readFileSync(file, 'utf8')) as SavedSession;
    return s.socket === socket && typeof s.token === 'string' ? s : null;
  } catch {
    return null;
  }
}

export function saveSession(s: SavedSession): string {
  const file = sessionFile(s.socket);
  mkdirSync(join(file, '..'), { recursive: true, mode: 0o700 });
  const tmp = `${file}.${process.pid}.tmp`;
  writeFileSync(tmp, `${JSON.stringify(s)}\n`, { mode: 0o600 });
  renameSync(tmp, file);
  return file;
}

export function dropSession(socket: string): void {
  try {
    rmSync(sessionFile(socket), { force: true });
  } catch {
    /* no runtime directory: nothing saved */
  }
}
