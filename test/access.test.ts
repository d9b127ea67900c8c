import t from 'tap';
import { readFileSync } from 'node:fs';
import { scryptSync } from 'node:crypto';
import { matrix, PERMISSIONS, ROLES, scopeOf } from '../daemon/access/permissions.js';
import { hashPassword, passwordProblem, verifyPassword } from '../daemon/access/passwords.js';
import { LoginGuard } from '../daemon/access/LoginGuard.js';
import { Sessions, tokenId } from '../daemon/access/Sessions.js';
import { parseRange } from '../daemon/api/v1/byteRange.js';
import { decodeCursor, encodeCursor } from '../daemon/services/cursor.js';

t.test('docs/security.md shows the permission matrix the code has', async (t) => {
  const md = readFileSync('docs/security.md', 'utf8');
  const table = md.slice(md.indexOf('<!-- matrix:start -->'), md.indexOf('<!-- matrix:end -->')).split('\n').filter((l) => l.startsWith('| ') && !l.startsWith('| permission'));
  const plain = matrix(false);
  const withTech = matrix(true);
  t.same(table.map((l) => l.split('|')[1]!.trim()), [...PERMISSIONS], 'one row per permission, in order');
  for (const line of table) {
    const cells = line.split('|').slice(1, -1).map((c) => c.trim());
    const perm = cells[0] as (typeof PERMISSIONS)[number];
    ROLES.forEach((role, i) => {
      const doc = cells[i + 1];
      const code = plain[role][perm] ?? '';
      if (doc === '(config)') {
        t.equal(code, '', `${perm}/${role}: not granted by default`);
        t.equal(withTech[role][perm], 'all', `${perm}/${role}: granted with access.technicianListens`);
      } else t.equal(doc, code, `${perm}/${role}`);
    });
  }
});

t.test('the widest grant of several roles wins; no role, no grant', async (t) => {
  const m = matrix(false);
  t.equal(scopeOf(m, ['agent'], 'calls.search'), 'own');
  t.equal(scopeOf(m, ['agent', 'quality'], 'calls.search'), 'all');
  t.equal(scopeOf(m, ['admin'], 'calls.listen'), null, 'admin: no recordings');
  t.equal(scopeOf(m, [], 'system.status'), null);
});

t.test('passwords: scrypt in the documented format, verified against an independent scrypt', async (t) => {
  const h = await hashPassword('a fine long passphrase');
  const [kind, N, r, p, salt, hash] = h.split('$');
  t.same([kind, N, r, p], ['scrypt', '32768', '8', '1']);
  const mine = scryptSync('a fine long passphrase', Buffer.from(salt!, 'base64url'), 32, { N: 32768, r: 8, p: 1, maxmem: 64 * 1024 * 1024 });
  t.equal(mine.toString('base64url'), hash, 'the stored hash is scrypt(password, salt) with those parameters');
  t.ok(await verifyPassword('a fine long passphrase', h));
  t.notOk(await verifyPassword('a fine long passphrasE', h));
  t.notOk(await verifyPassword('x', 'md5$abc'), 'an unknown scheme never verifies');
  t.not(await hashPassword('a fine long passphrase'), h, 'salted');
});

t.test('password policy', async (t) => {
  t.match(passwordProblem('short', 'anna'), /at least 12/);
  t.match(passwordProblem('aaaaaaaaaaaaaaa', 'anna'), /different characters/);
  t.match(passwordProblem('my name is anna.k ok', 'anna.k'), /user name/);
  t.match(passwordProblem('Password1234', 'anna'), /common/);
  t.match(passwordProblem('x'.repeat(100) + 'y'.repeat(200), 'anna'), /at most 256/);
  t.equal(passwordProblem('correct horse battery staple', 'anna'), null);
  t.equal(passwordProblem('ääkkösiä ja välejä', 'anna'), null, 'any script, counted in characters');
});

t.test('login guard: back-off per address, lockout per name (also for names that do not exist)', async (t) => {
  let now = 0;
  const g = new LoginGuard(() => ({ failures: 5, lockMs: 15 * 60_000 }), () => now);
  for (let i = 0; i < 3; i++) {
    t.equal(g.check('nobody.here', '10.0.0.1'), null);
    g.failed('nobody.here', '10.0.0.1');
  }
  t.same(g.check('x', '10.0.0.1'), { reason: 'too_many_attempts', retryAfterS: 1 }, 'after 3 failures: wait 2^0 s');
  now += 1000;
  t.equal(g.check('x', '10.0.0.1'), null);
  g.failed('nobody.here', '10.0.0.1');
  t.same(g.check('x', '10.0.0.1'), { reason: 'too_many_attempts', retryAfterS: 2 }, 'then 2 s');
  t.equal(g.check('x', '10.0.0.2'), null, 'another address is not slowed');
  now += 2000;
  t.equal(g.failed('nobody.here', '10.0.0.3'), true, 'the fifth wrong password locks the name');
  t.same(g.check('nobody.here', '10.0.0.9'), { reason: 'account_locked', retryAfterS: 900 });
  now += 15 * 60_000;
  t.equal(g.check('nobody.here', '10.0.0.9'), null, 'the lock expires');
  g.failed('anna', '10.0.0.4');
  g.succeeded('anna');
  for (let i = 0; i < 4; i++) g.failed('anna', `10.1.0.${i}`);
  t.equal(g.check('anna', '10.2.0.0'), null, 'a success resets the count');
});

t.test('sessions: hashed, idle timeout and absolute lifetime on the monotonic clock', async (t) => {
  let now = 0;
  const s = new Sessions(() => ({ idleMs: 15 * 60_000, maxMs: 60 * 60_000 }), () => now);
  const { token, session } = s.create('anna', 'api');
  t.match(token, /^[A-Za-z0-9_-]{43}$/, '256 random bits');
  t.equal(session.id, tokenId(token));
  t.notOk(JSON.stringify(s).includes(token), 'the token itself is not kept');
  now += 14 * 60_000;
  t.ok(s.touch(token));
  now += 14 * 60_000;
  t.ok(s.touch(token), 'use restarts the idle clock');
  now += 15 * 60_000 + 1;
  t.equal(s.touch(token), null, 'idle too long');
  const b = s.create('anna', 'cli');
  for (let i = 0; i < 7; i++) {
    now += 10 * 60_000;
    s.touch(b.token);
  }
  t.equal(s.touch(b.token), null, 'past an hour after login it ends whatever the use');
  const c = s.create('anna', 'api');
  const d = s.create('bert', 'api');
  t.equal(s.endAllOf('anna'), 1);
  t.equal(s.touch(c.token), null);
  t.ok(s.touch(d.token));
});

t.test('byte ranges (RFC 9110) over a body of 100 bytes', async (t) => {
  t.same(parseRange('bytes=0-1', 100), { start: 0, end: 1 });
  t.same(parseRange('bytes=90-', 100), { start: 90, end: 99 });
  t.same(parseRange('bytes=-10', 100), { start: 90, end: 99 });
  t.same(parseRange('bytes=-1000', 100), { start: 0, end: 99 });
  t.same(parseRange('bytes=50-1000', 100), { start: 50, end: 99 });
  t.equal(parseRange('bytes=100-', 100), 'unsatisfiable');
  t.equal(parseRange('bytes=100-200', 100), 'unsatisfiable');
  t.equal(parseRange('bytes=-0', 100), 'unsatisfiable');
  t.equal(parseRange(undefined, 100), null);
  t.equal(parseRange('bytes=5-2', 100), null, 'malformed: ignored, the whole body');
  t.equal(parseRange('bytes=0-1,5-6', 100), null, 'several ranges: the whole body');
  t.equal(parseRange('items=0-1', 100), null);
});

t.test('cursors carry a position only and refuse anything else', async (t) => {
  const c = encodeCursor({ phase: 'live', at: { startedAt: '2026-01-01T00:00:00.000Z', id: 'X' } });
  t.same(decodeCursor(c), { phase: 'live', at: { startedAt: '2026-01-01T00:00:00.000Z', id: 'X' } });
  for (const bad of ['', 'e30', Buffer.from('{"phase":"live","at":{"startedAt":1}}').toString('base64url'), Buffer.from('{"phase":"all"}').toString('base64url')]) t.throws(() => decodeCursor(bad), { code: 'bad_request' });
});

t.test('the CLI session file: the runtime directory, else a private /tmp/callrec-UID, never a folder others can enter', async (t) => {
  const { sessionFile } = await import('../daemon/cli/sessionFile.js');
  const { mkdtempSync, statSync, chmodSync, rmSync } = await import('node:fs');
  const { tmpdir } = await import('node:os');
  const run = mkdtempSync(`${tmpdir()}/callrec-rt-`);
  t.match(sessionFile('/run/callrec/callrec.sock', { XDG_RUNTIME_DIR: run }), new RegExp(`^${run}/callrec/session-[0-9a-f]{16}\\.json$`));
  t.not(sessionFile('/a.sock', { XDG_RUNTIME_DIR: run }), sessionFile('/b.sock', { XDG_RUNTIME_DIR: run }), 'one file per daemon socket');
  const uid = process.getuid!();
  const fallback = `/tmp/callrec-${uid}`;
  rmSync(fallback, { recursive: true, force: true });
  t.match(sessionFile('/s.sock', { XDG_RUNTIME_DIR: '/nonexistent/run' }), new RegExp(`^${fallback}/session-`));
  t.equal(statSync(fallback).mode & 0o777, 0o700);
  chmodSync(fallback, 0o755);
  t.throws(() => sessionFile('/s.sock', { XDG_RUNTIME_DIR: '/nonexistent/run' }), /not a private folder/);
  rmSync(fallback, { recursive: true, force: true });
});
