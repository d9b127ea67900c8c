import t from 'tap';
import { createHash } from 'node:crypto';
import { readFileSync, readdirSync, rmSync, symlinkSync, renameSync } from 'node:fs';
import { join } from 'node:path';
import { audioPath } from '../daemon/store/recordingPaths.js';
import type { RecordingMeta } from '../daemon/store/RecordingMeta.js';
import { decodeOggOpus } from '../daemon/store/ogg/decodeOggOpus.js';
import { signal, sleep, startTestDaemon, testActor, waitFor } from './helpers/testDaemon.js';
import { PASSWORD, people } from './helpers/people.js';
import { apiClient } from './helpers/api.js';

const td = await startTestDaemon();
t.teardown(() => td.stop());
const api = apiClient(td);
const socket = td.cfg.control.socket;

async function record(callId: string, line: string, caller: string, agent: { id: string; name: string }, ms: number, presentation = 'allowed'): Promise<RecordingMeta> {
  const r = await td.post(signal('start', callId, { line, caller, serviceNumber: '029 497 002', callerPresentation: presentation }));
  await td.post(signal('answer', callId, { agent }));
  await sleep(ms);
  await td.post(signal('end', callId));
  return waitFor(async () => {
    const m = (await td.daemon.store.get(r.json.recordingId)) as RecordingMeta;
    return m.audioSha256 ? m : null;
  });
}

const aino = { id: 'aino.virtanen', name: 'Aino Virtanen' };
const timo = { id: 'timo.laine', name: 'Timo Laine' };
const [a1, b1] = await Promise.all([record('api-a1', 'L1', '+358 40 555 0100', aino, 1500), record('api-b1', 'L2', '+358 50 777 0200', timo, 1200, 'restricted')]);
const a2 = await record('api-a2', 'L1', '+358 40 555 0101', aino, 600);
const tokens = await people(socket, [
  { username: 'maria.manager', roles: ['manager'] },
  { username: 'quinn.quality', roles: ['quality'] },
  { username: 'aino.agent', roles: ['agent'], agentId: aino.id },
  { username: 'timo.agent', roles: ['agent'], agentId: timo.id },
  { username: 'tess.tech', roles: ['technician'] },
]);
const T = {
  admin: await api.token('first.admin'),
  manager: await api.token('maria.manager'),
  quality: await api.token('quinn.quality'),
  aino: await api.token('aino.agent'),
  timo: await api.token('timo.agent'),
  tech: await api.token('tess.tech'),
};
t.ok(tokens['aino.agent'], 'accounts made through the socket: first administrator as root, then the rest by that administrator');

/** The concrete path for a route pattern (every parameter filled). */
const fill = (path: string, id: string): string => path.replace(':id', id).replace(':username', 'aino.agent');

t.test('every route but the login, /health and /metrics answers 401 without a valid session (the router enumerated)', async (t) => {
  const routes = td.daemon['admin'].routes();
  t.ok(routes.length >= 18, `${routes.length} routes`);
  const open = new Set(['GET /health', 'GET /metrics', 'POST /api/v1/sessions']);
  for (const r of routes) {
    if (open.has(`${r.method} ${r.path}`)) continue;
    for (const [how, headers] of [
      ['no credentials', {}],
      ['a made-up bearer token', { authorization: `Bearer ${'x'.repeat(43)}` }],
      ['a made-up cookie', { cookie: `callrec_session=${'y'.repeat(43)}` }],
    ] as const) {
      const res = await api.req(r.method, fill(r.path, a1.id), { headers: { ...headers }, ...(r.method === 'GET' ? {} : { body: {} }) });
      t.equal(res.status, 401, `${r.method} ${r.path} with ${how}: 401`);
      t.equal(res.json?.error?.code, 'unauthenticated');
    }
  }
  t.equal((await api.req('GET', '/health')).status, 200);
  t.equal((await api.req('GET', '/api/v1/nothing/here', { token: T.manager })).status, 404, 'an unknown path under /api/v1 with a session: 404');
});

t.test('a manager searches, pages with a cursor, reads metadata; numbers travel only in POST bodies', async (t) => {
  const all = await api.req('POST', '/api/v1/calls/search', { token: T.manager, body: {} });
  t.equal(all.status, 200);
  t.same(all.json.items.map((m: RecordingMeta) => m.id).sort(), [a1.id, b1.id, a2.id].sort());
  const seen: string[] = [];
  let cursor: string | undefined;
  for (let pages = 0; pages < 10; pages++) {
    const p = await api.req('POST', '/api/v1/calls/search', { token: T.manager, body: { limit: 1, ...(cursor ? { cursor } : {}) } });
    seen.push(...p.json.items.map((m: RecordingMeta) => m.id));
    cursor = p.json.nextCursor ?? undefined;
    if (!cursor) break;
  }
  t.same(seen, all.json.items.map((m: RecordingMeta) => m.id), 'pages of one, following nextCursor, give the same list in the same order');
  const newest = await api.req('POST', '/api/v1/calls/search', { token: T.manager, body: { order: 'desc' } });
  t.same(newest.json.items.map((m: RecordingMeta) => m.id), [...all.json.items.map((m: RecordingMeta) => m.id)].reverse(), 'order desc: newest first');
  t.equal((await api.req('POST', '/api/v1/calls/search', { token: T.manager, body: { order: 'sideways' } })).status, 400);
  const byCaller = await api.req('POST', '/api/v1/calls/search', { token: T.manager, body: { caller: '040 555 0100' } });
  t.same(byCaller.json.items.map((m: RecordingMeta) => m.id), [a1.id]);
  const byAgent = await api.req('POST', '/api/v1/calls/search', { token: T.manager, body: { agent: timo.id } });
  t.same(byAgent.json.items.map((m: RecordingMeta) => m.id), [b1.id]);
  const show = await api.req('GET', `/api/v1/calls/${a1.id}`, { token: T.manager });
  t.same(show.json, { ...a1, callerMasked: false });
  t.equal((await api.req('GET', '/api/v1/calls/search', { token: T.manager })).status, 405, 'search is POST only: no query string with numbers in access logs');
});

t.test('restricted presentation: masked for quality, shown to the manager (subject requests); a masked number cannot be searched', async (t) => {
  const q = await api.req('GET', `/api/v1/calls/${b1.id}`, { token: T.quality });
  t.equal(q.status, 200);
  t.equal(q.json.caller, 'restricted');
  t.equal(q.json.callerNormalized, null);
  t.equal(q.json.callerMasked, true);
  const m = await api.req('GET', `/api/v1/calls/${b1.id}`, { token: T.manager });
  t.equal(m.json.caller, '+358 50 777 0200');
  t.equal(m.json.callerMasked, false);
  t.same((await api.req('POST', '/api/v1/calls/search', { token: T.quality, body: { caller: '+358 50 777 0200' } })).json.items, [], 'quality cannot confirm a hidden number by searching for it');
  t.equal((await api.req('POST', '/api/v1/calls/search', { token: T.manager, body: { caller: '+358 50 777 0200' } })).json.items.length, 1);
});

t.test('audio: Range answers 206 with the plain Ogg length, 416 past the end; the whole file is the recording', async (t) => {
  const full = await api.req('GET', `/api/v1/calls/${a1.id}/audio`, { token: T.manager });
  t.equal(full.status, 200);
  t.equal(full.headers.get('content-type'), 'audio/ogg');
  t.equal(full.headers.get('accept-ranges'), 'bytes');
  const L = a1.audioBytes!;
  t.equal(full.body.length, L, 'L = audioBytes, the plain Ogg length');
  t.equal(createHash('sha256').update(full.body).digest('hex'), a1.audioSha256, 'the bytes are the recording (its stored SHA-256)');
  t.equal(full.body.subarray(0, 4).toString('latin1'), 'OggS');
  t.ok(decodeOggOpus(full.body, 8000).samples.length > 8000, 'decodes');
  const r01 = await api.req('GET', `/api/v1/calls/${a1.id}/audio`, { token: T.manager, headers: { range: 'bytes=0-1' } });
  t.equal(r01.status, 206);
  t.equal(r01.headers.get('content-range'), `bytes 0-1/${L}`);
  t.equal(r01.headers.get('content-length'), '2');
  t.same(r01.body, full.body.subarray(0, 2));
  // Ranges that start and end inside segments, cross them, and reach the end.
  for (const [a, b] of [[1000, 1999], [L - 10, L - 1], [37, L - 5], [L - 1, L + 500]] as const) {
    const r = await api.req('GET', `/api/v1/calls/${a1.id}/audio`, { token: T.manager, headers: { range: `bytes=${a}-${b}` } });
    const end = Math.min(b, L - 1);
    t.equal(r.status, 206);
    t.equal(r.headers.get('content-range'), `bytes ${a}-${end}/${L}`);
    t.same(r.body, full.body.subarray(a, end + 1), `bytes ${a}-${b}`);
  }
  const suffix = await api.req('GET', `/api/v1/calls/${a1.id}/audio`, { token: T.manager, headers: { range: 'bytes=-100' } });
  t.same(suffix.body, full.body.subarray(L - 100));
  for (const bad of [`bytes=${L}-`, `bytes=${L + 10}-${L + 20}`]) {
    const r = await api.req('GET', `/api/v1/calls/${a1.id}/audio`, { token: T.manager, headers: { range: bad } });
    t.equal(r.status, 416, bad);
    t.equal(r.headers.get('content-range'), `bytes */${L}`);
  }
  const head = await fetch(`${api.base}/api/v1/calls/${a1.id}/audio`, { method: 'HEAD', headers: { authorization: `Bearer ${T.manager}`, range: 'bytes=0-1' } });
  t.equal(head.status, 206);
  t.equal(head.headers.get('content-length'), '2');
});

t.test('WAV export: a manager gets the decoded call; quality and agents may not export', async (t) => {
  const wav = await api.req('GET', `/api/v1/calls/${a1.id}/export?format=wav`, { token: T.manager });
  t.equal(wav.status, 200);
  t.equal(wav.headers.get('content-type'), 'audio/wav');
  t.match(wav.headers.get('content-disposition'), new RegExp(`attachment; filename="${a1.id}.wav"`));
  t.equal(wav.body.subarray(0, 4).toString('latin1'), 'RIFF');
  t.ok(Math.abs((wav.body.length - 44) / 2 - a1.durationMs! * 8) <= 8, 'WAV length = duration at 8 kHz');
  t.equal((await api.req('GET', `/api/v1/calls/${a1.id}/export?format=wav`, { token: T.quality })).status, 403);
  t.equal((await api.req('GET', `/api/v1/calls/${a1.id}/export?format=wav`, { token: T.aino })).status, 403);
  t.equal((await api.req('GET', `/api/v1/calls/${a1.id}/export?format=mp3`, { token: T.manager })).status, 400);
});

t.test('roles: admin has no recordings, technician none unless configured, quality cannot destroy', async (t) => {
  t.equal((await api.req('POST', '/api/v1/calls/search', { token: T.admin, body: {} })).status, 403);
  t.equal((await api.req('GET', `/api/v1/calls/${a1.id}/audio`, { token: T.admin })).status, 403);
  t.equal((await api.req('POST', '/api/v1/calls/search', { token: T.tech, body: {} })).status, 403);
  t.equal((await api.req('GET', '/api/v1/system/status', { token: T.tech })).status, 200);
  t.equal((await api.req('POST', `/api/v1/calls/${a1.id}/verify`, { token: T.tech })).json.ok, true);
  t.equal((await api.req('GET', '/api/v1/users', { token: T.manager })).status, 403);
  t.equal((await api.req('POST', `/api/v1/calls/${a2.id}/destroy`, { token: T.quality, body: { reason: 'objection' } })).status, 403);
  const roles = await api.req('GET', '/api/v1/roles', { token: T.aino });
  t.same(roles.json.mine, { 'calls.search': 'own', 'calls.listen': 'own' });
  td.daemon.cfg.access.technicianListens = true;
  t.equal((await api.req('POST', '/api/v1/calls/search', { token: T.tech, body: {} })).status, 200, 'access.technicianListens: true lets technicians search');
  td.daemon.cfg.access.technicianListens = false;
});

t.test('an agent reaches only their own calls, through every route, filter, id guess and cursor', async (t) => {
  const routes = td.daemon['admin'].routes().filter((r: { path: string }) => r.path.startsWith('/api/v1/calls/:id'));
  t.ok(routes.length >= 5, routes.map((r: { method: string; path: string }) => `${r.method} ${r.path}`).join(', '));
  for (const r of routes) {
    const res = await api.req(r.method, fill(r.path, b1.id), { token: T.aino, ...(r.method === 'POST' || r.method === 'PUT' ? { body: r.path.endsWith('destroy') ? { reason: 'x' } : r.path.endsWith('training') ? { marked: true } : {} } : {}) });
    t.ok([403, 404].includes(res.status), `${r.method} ${r.path} on another adviser's call: ${res.status}`);
    t.notMatch(res.body.toString('latin1'), /OggS|RIFF|timo|777 0200/, 'nothing of the call in the answer');
  }
  t.equal((await api.req('GET', `/api/v1/calls/${b1.id}`, { token: T.aino })).json.error.message, (await api.req('GET', '/api/v1/calls/01ARZ3NDEKTSV4RRFFQ69G5FAV', { token: T.aino })).json.error.message.replace('01ARZ3NDEKTSV4RRFFQ69G5FAV', b1.id), 'another adviser\'s call answers exactly like a missing one');
  const own = await api.req('POST', '/api/v1/calls/search', { token: T.aino, body: {} });
  t.same(own.json.items.map((m: RecordingMeta) => m.id), [a1.id, a2.id]);
  // Property: whatever the filters and cursor, an agent's answers hold only their own calls.
  const filters = [{}, { agent: timo.id }, { agent: aino.id }, { caller: '+358 50 777 0200' }, { serviceNumber: '029 497 002' }, { from: '2000-01-01' }, { includeDestroyed: true }, { limit: 1 }];
  const cursors = [undefined, Buffer.from(JSON.stringify({ phase: 'live', at: { startedAt: '0000', id: '' } })).toString('base64url'), Buffer.from(JSON.stringify({ phase: 'destroyed', afterId: '' })).toString('base64url')];
  let checked = 0;
  for (const f of filters) {
    for (const cursor of cursors) {
      let c = cursor;
      for (let page = 0; page < 5; page++) {
        const res = await api.req('POST', '/api/v1/calls/search', { token: T.aino, body: { ...f, ...(c ? { cursor: c } : {}) } });
        t.equal(res.status, 200);
        for (const m of res.json.items) t.equal(m.agentId, aino.id, `filter ${JSON.stringify(f)}: only Aino's calls`);
        checked++;
        c = res.json.nextCursor;
        if (!c) break;
      }
    }
  }
  t.ok(checked >= filters.length * cursors.length);
  const timoSees = await api.req('POST', '/api/v1/calls/search', { token: T.timo, body: {} });
  t.same(timoSees.json.items.map((m: RecordingMeta) => m.id), [b1.id]);
  t.equal(timoSees.json.items[0].callerMasked, true, 'an agent sees a restricted number masked too');
  t.equal((await api.req('GET', `/api/v1/calls/${a1.id}/audio`, { token: T.aino, headers: { range: 'bytes=0-3' } })).status, 206, 'and hears their own');
});

t.test('odd ids and paths never reach a file outside the recordings', async (t) => {
  for (const id of ['..%2F..%2F..%2Fetc%2Fpasswd', '%2Fetc%2Fpasswd', '..', '.', '%00', 'a'.repeat(300), `${a1.id}%2F..`, `${a1.id}.meta`, encodeURIComponent(a1.id.toLowerCase())]) {
    for (const suffix of ['', '/audio', '/export?format=opus']) {
      const res = await api.req('GET', `/api/v1/calls/${id}${suffix}`, { token: T.manager });
      t.equal(res.status, 404, `${id}${suffix}: ${res.status}`);
      t.notMatch(res.body.toString('latin1'), /root:|OggS/);
    }
  }
  // A symlink planted where a recording's audio belongs is refused, not followed.
  const file = audioPath(td.cfg.dataDir, a2.id, a2.startedAt);
  renameSync(file, `${file}.moved`);
  symlinkSync('/etc/passwd', file);
  t.teardown(() => {
    rmSync(file, { force: true });
    renameSync(`${file}.moved`, file);
  });
  for (const path of [`/api/v1/calls/${a2.id}/audio`, `/api/v1/calls/${a2.id}/export?format=opus`]) {
    const res = await api.req('GET', path, { token: T.manager });
    t.equal(res.status, 500, path);
    t.equal(res.json.error.code, 'integrity');
    t.notMatch(res.body.toString('latin1'), /root:/);
  }
});

t.test('bad requests: malformed JSON, huge bodies, unknown fields, wrong types, form posts, cross-site posts', async (t) => {
  const bad = await api.req('POST', '/api/v1/calls/search', { token: T.manager, raw: '{"from": ', headers: { 'content-type': 'application/json' } });
  t.equal(bad.status, 400);
  t.equal(bad.json.error.code, 'bad_json');
  const huge = await api.req('POST', '/api/v1/calls/search', { token: T.manager, raw: JSON.stringify({ caller: 'x'.repeat(100_000) }), headers: { 'content-type': 'application/json' } });
  t.equal(huge.status, 413);
  t.equal(huge.json.error.code, 'payload_too_large');
  const unknown = await api.req('POST', '/api/v1/calls/search', { token: T.manager, body: { form: 'x' } });
  t.equal(unknown.status, 400);
  t.match(unknown.json.error.message, /unknown field "form"/);
  t.equal((await api.req('POST', '/api/v1/calls/search', { token: T.manager, body: { limit: 'ten' } })).status, 400);
  t.equal((await api.req('POST', '/api/v1/calls/search', { token: T.manager, body: { limit: 100000 } })).status, 400);
  t.equal((await api.req('POST', '/api/v1/calls/search', { token: T.manager, body: { from: 'yesterday' } })).status, 400);
  t.equal((await api.req('POST', '/api/v1/calls/search', { token: T.manager, body: { cursor: 'not-a-cursor' } })).status, 400);
  t.equal((await api.req('POST', '/api/v1/calls/search', { token: T.manager, body: [] })).status, 400);
  const form = await api.req('POST', `/api/v1/calls/${a2.id}/destroy`, { token: T.manager, raw: 'reason=gone', headers: { 'content-type': 'application/x-www-form-urlencoded' } });
  t.equal(form.status, 415, 'a form post is refused');
  // A browser session (cookie) from another site: refused whatever it carries.
  const login = await api.req('POST', '/api/v1/sessions', { body: { username: 'maria.manager', password: PASSWORD } });
  t.equal(login.status, 201);
  t.notOk(login.json.token, 'a browser login gets no token in the body');
  const setCookie = login.headers.get('set-cookie')!;
  t.match(setCookie, /callrec_session=[A-Za-z0-9_-]{43}; Max-Age=\d+; Path=\/api\/v1; Expires=.*; HttpOnly; SameSite=Strict/);
  t.notMatch(setCookie, /Secure/, 'no Secure flag without TLS (it would stop plain-HTTP access on the LAN)');
  const cookie = setCookie.split(';')[0]!;
  const csrf = login.json.csrfToken as string;
  const cross = await api.req('POST', `/api/v1/calls/${a2.id}/destroy`, { raw: 'reason=gone', headers: { cookie, origin: 'http://evil.example', 'content-type': 'application/x-www-form-urlencoded' } });
  t.equal(cross.status, 403);
  t.equal(cross.json.error.code, 'cross_origin');
  const noCsrf = await api.req('POST', `/api/v1/calls/${a2.id}/destroy`, { body: { reason: 'gone' }, headers: { cookie } });
  t.equal(noCsrf.status, 403, 'a cookie without the CSRF header cannot change anything');
  t.equal(noCsrf.json.error.code, 'csrf');
  t.equal((await api.req('GET', `/api/v1/calls/${a2.id}`, { headers: { cookie } })).status, 200, 'a cookie reads (an <audio> element sends no custom header)');
  t.equal((await api.req('GET', `/api/v1/calls/${a2.id}/audio`, { headers: { cookie, range: 'bytes=0-1' } })).status, 206);
  t.equal((await api.req('POST', '/api/v1/calls/search', { body: {}, headers: { cookie, 'x-csrf-token': csrf } })).status, 200, 'with its CSRF token it works');
  t.ok((await td.daemon.store.get(a2.id))!.status !== 'destroyed', 'nothing was destroyed');
  const out = await api.req('DELETE', '/api/v1/sessions/current', { headers: { cookie, 'x-csrf-token': csrf } });
  t.equal(out.status, 204);
  t.equal((await api.req('GET', `/api/v1/calls/${a2.id}`, { headers: { cookie } })).status, 401, 'logged out');
});

t.test('headers: strict CSP, no HSTS or upgrade-insecure-requests without TLS, nothing cached', async (t) => {
  const res = await api.req('GET', `/api/v1/calls/${a1.id}`, { token: T.manager });
  const csp = res.headers.get('content-security-policy')!;
  t.match(csp, /default-src 'none'/);
  t.match(csp, /frame-ancestors 'none'/);
  t.notMatch(csp, /upgrade-insecure-requests/);
  t.equal(res.headers.get('strict-transport-security'), null);
  t.equal(res.headers.get('x-powered-by'), null);
  t.equal(res.headers.get('x-content-type-options'), 'nosniff');
});

t.test('brute force: the source address is slowed, the account locked; the right password then waits too', async (t) => {
  const from = (ip: string) => ({ 'x-forwarded-for': ip }); // ignored: the socket's address counts
  const tries: number[] = [];
  for (let i = 0; i < 4; i++) tries.push((await api.req('POST', '/api/v1/sessions', { body: { username: 'quinn.quality', password: `wrong password ${i}` }, headers: from(`10.0.0.${i}`) })).status);
  t.same(tries.slice(0, 3), [401, 401, 401]);
  const slowed = await api.req('POST', '/api/v1/sessions', { body: { username: 'quinn.quality', password: 'wrong password x' } });
  t.equal(slowed.status, 429, 'the fifth attempt at once: too many attempts from this address');
  t.ok(Number(slowed.headers.get('retry-after')) >= 1);
  t.equal(slowed.json.error.code, 'too_many_attempts');
  // The account lock, independent of the address: the guard's clock is moved on instead of waiting minutes.
  const guard = td.daemon.services.sessions['loginGuard'];
  guard.forgetAddress('::ffff:127.0.0.1');
  guard.forgetAddress('127.0.0.1');
  for (let i = 0; i < 5; i++) guard.failed('quinn.quality', `192.0.2.${i}`);
  const locked = await api.req('POST', '/api/v1/sessions', { body: { username: 'quinn.quality', password: PASSWORD } });
  t.equal(locked.status, 423, 'locked: even the right password is refused');
  t.equal(locked.json.error.code, 'account_locked');
  const unlock = await api.req('PATCH', '/api/v1/users/quinn.quality', { token: T.admin, body: { unlock: true } });
  t.equal(unlock.status, 200);
  t.equal((await api.req('POST', '/api/v1/sessions', { body: { username: 'quinn.quality', password: PASSWORD } })).status, 201, 'unlocked by an administrator');
  const audit = await api.req('POST', '/api/v1/audit/search', { token: T.admin, body: { action: 'session.login', user: 'quinn.quality' } });
  t.ok(audit.json.entries.filter((e: { outcome: string }) => e.outcome === 'denied').length >= 4, 'failed logins are in the audit trail');
});

t.test('accounts: an administrator adds, changes and disables; a disabled account and its sessions stop at once', async (t) => {
  const add = await api.req('POST', '/api/v1/users', { token: T.admin, body: { username: 'new.agent', roles: ['agent'], agentId: 'new.a', password: PASSWORD } });
  t.equal(add.status, 201);
  t.notOk('passwordHash' in add.json, 'no hash leaves the box');
  t.equal((await api.req('POST', '/api/v1/users', { token: T.admin, body: { username: 'new.agent', roles: ['agent'], agentId: 'x', password: PASSWORD } })).status, 409);
  t.equal((await api.req('POST', '/api/v1/users', { token: T.admin, body: { username: 'weak.pw', roles: ['quality'], password: 'short' } })).status, 400);
  t.equal((await api.req('POST', '/api/v1/users', { token: T.admin, body: { username: 'no.id', roles: ['agent'], password: PASSWORD } })).status, 400, 'an agent needs an adviser id');
  t.equal((await api.req('POST', '/api/v1/users', { token: T.admin, body: { username: 'x', roles: ['root'], password: PASSWORD } })).status, 400);
  const tok = await api.token('new.agent');
  t.equal((await api.req('GET', '/api/v1/sessions/current', { token: tok })).json.user.username, 'new.agent');
  t.equal((await api.req('PATCH', '/api/v1/users/new.agent', { token: T.admin, body: { disabled: true } })).json.disabled, true);
  t.equal((await api.req('GET', '/api/v1/sessions/current', { token: tok })).status, 401, 'the open session ended');
  t.equal((await api.req('POST', '/api/v1/sessions', { body: { username: 'new.agent', password: PASSWORD, client: 'api' } })).status, 401, 'and no new one');
  t.equal((await api.req('PATCH', '/api/v1/users/first.admin', { token: T.admin, body: { disabled: true } })).status, 409, 'the last administrator cannot lock themself out');
  const change = await api.req('PUT', '/api/v1/account/password', { token: T.timo, body: { currentPassword: PASSWORD, password: 'a new long passphrase 42' } });
  t.equal(change.status, 204);
  t.equal((await api.req('POST', '/api/v1/sessions', { body: { username: 'timo.agent', password: 'a new long passphrase 42', client: 'api' } })).status, 201);
  const users = await api.req('GET', '/api/v1/users', { token: T.admin });
  t.ok(users.json.users.some((u: { username: string; disabled: boolean }) => u.username === 'new.agent' && u.disabled), 'disabled, never deleted');
});

t.test('the audit trail holds who, what, from where and the outcome; numbers only as keyed hashes; never audio', async (t) => {
  // Someone types a number (or a password) into the user-name field: a name no account has is not kept.
  await api.req('POST', '/api/v1/sessions', { body: { username: '0405550100', password: 'whatever it is' } });
  const entries = (await api.req('POST', '/api/v1/audit/search', { token: T.admin, body: { limit: 1000 } })).json.entries as Array<{ action: string; outcome: string; target?: string; actor: { user: string; from: string; via: string }; details?: Record<string, unknown> }>;
  const has = (action: string, pred: (e: (typeof entries)[number]) => boolean = () => true) => entries.some((e) => e.action === action && pred(e));
  t.ok(has('users.bootstrap', (e) => e.actor.via === 'cli' && e.actor.from === `uid:${process.getuid!()}`), 'the first administrator, with the socket peer\'s uid');
  t.ok(has('session.login', (e) => e.outcome === 'ok' && e.actor.user === 'maria.manager' && /127\.0\.0\.1/.test(e.actor.from)));
  t.ok(has('calls.search', (e) => e.actor.user === 'maria.manager' && typeof (e.details?.caller as { hash?: string })?.hash === 'string'), 'a search by number keeps its filter as a hash');
  t.ok(has('calls.view', (e) => e.target === b1.id && e.actor.user === 'quinn.quality'));
  t.ok(has('calls.listen', (e) => e.target === a1.id && e.actor.user === 'maria.manager'));
  t.ok(has('calls.export', (e) => e.target === a1.id && (e.details?.format === 'wav')));
  t.ok(has('calls.search', (e) => e.outcome === 'denied' && e.actor.user === 'first.admin'), 'refusals too');
  t.ok(has('users.update', (e) => e.target === 'new.agent'));
  const listens = entries.filter((e) => e.action === 'calls.listen' && e.target === a1.id && e.actor.user === 'maria.manager').length;
  t.equal(listens, 1, 'one listen entry per session and call, not one per Range request');
  const raw = readdirSync(join(td.cfg.dataDir, 'audit')).filter((f) => f.endsWith('.jsonl')).map((f) => readFileSync(join(td.cfg.dataDir, 'audit', f), 'utf8')).join('');
  for (const needle of ['555 0100', '5550100', '777 0200', '7770200', 'OggS', PASSWORD]) t.notOk(raw.includes(needle), `the trail holds no ${needle}`);
  const v = await api.req('POST', '/api/v1/audit/verify', { token: T.tech });
  t.equal(v.json.ok, true, JSON.stringify(v.json.problems));
  t.equal((await api.req('POST', '/api/v1/audit/search', { token: T.quality, body: {} })).status, 403);
});

t.test('the same rules through the service layer in-process: a destroy by a manager is on record with its role', async (t) => {
  const tomb = await td.daemon.service.destroy(testActor(['manager']), a2.id, 'caller objected');
  t.match(tomb, { id: a2.id, status: 'destroyed', role: 'manager' });
  t.equal((await api.req('GET', `/api/v1/calls/${a2.id}/audio`, { token: T.manager })).status, 404);
});

t.test('training marks: quality and managers mark, agents may not; a mark is audited as a change (started, then ok)', async (t) => {
  const on = await api.req('PUT', `/api/v1/calls/${a1.id}/training`, { token: T.quality, body: { marked: true } });
  t.equal(on.status, 200);
  t.ok(on.json.flags.includes('training'));
  t.ok(((await td.daemon.store.get(a1.id)) as RecordingMeta).flags.includes('training'), 'stored');
  t.equal((await api.req('PUT', `/api/v1/calls/${a1.id}/training`, { token: T.aino, body: { marked: false } })).status, 403, 'an agent may not, even on their own call');
  const off = await api.req('PUT', `/api/v1/calls/${a1.id}/training`, { token: T.manager, body: { marked: false } });
  t.notOk(off.json.flags.includes('training'));
  t.equal((await api.req('PUT', `/api/v1/calls/${a1.id}/training`, { token: T.manager, body: {} })).status, 400);
  const trail = (await api.req('POST', '/api/v1/audit/search', { token: T.admin, body: { action: 'calls.training', target: a1.id } })).json.entries as Array<{ outcome: string; actor: { user: string } }>;
  t.same(trail.map((e) => `${e.actor.user}:${e.outcome}`), ['quinn.quality:started', 'quinn.quality:ok', 'aino.agent:denied', 'maria.manager:started', 'maria.manager:ok'], 'each change has its started entry before its outcome (a body the schema refuses never reaches the service)');
});

t.test('a change the audit trail cannot record is not made; a read it cannot record gives nothing out', async (t) => {
  const trail = td.daemon.audit;
  const append = trail.append.bind(trail);
  trail.append = async () => {
    throw new Error('disk full (a test)');
  };
  try {
    const add = await api.req('POST', '/api/v1/users', { token: T.admin, body: { username: 'never.made', roles: ['quality'], password: PASSWORD } });
    t.equal(add.status, 503);
    t.equal(add.json.error.code, 'audit_unavailable');
    const audio = await api.req('GET', `/api/v1/calls/${b1.id}/audio`, { token: T.manager });
    t.equal(audio.status, 503);
    t.notMatch(audio.body.toString('latin1'), /OggS/);
  } finally {
    trail.append = append;
  }
  t.equal(await td.daemon.users.get('never.made'), null, 'the account was not made');
});

t.test('changing one\'s own password ends one\'s other sessions; wrong current passwords count as failed logins', async (t) => {
  td.daemon.services.sessions['loginGuard'].forgetAddress('::ffff:127.0.0.1');
  td.daemon.services.sessions['loginGuard'].forgetAddress('127.0.0.1');
  const first = await api.token('quinn.quality');
  const second = await api.token('quinn.quality');
  t.equal((await api.req('PUT', '/api/v1/account/password', { token: first, body: { currentPassword: PASSWORD, password: 'quality passphrase 2027' } })).status, 204);
  t.equal((await api.req('GET', '/api/v1/sessions/current', { token: second })).status, 401, 'the other session ended');
  t.equal((await api.req('GET', '/api/v1/sessions/current', { token: first })).status, 200, 'the one that changed it goes on');
  const statuses: number[] = [];
  for (let i = 0; i < 5; i++) statuses.push((await api.req('PUT', '/api/v1/account/password', { token: first, body: { currentPassword: `guess ${i} xxxxxxxx`, password: 'whatever passphrase 1' } })).status);
  t.same(statuses.slice(0, 3), [403, 403, 403]);
  t.ok(statuses.slice(3).every((s) => s === 429 || s === 423), `then slowed or locked: ${statuses.join(', ')}`);
  td.daemon.services.sessions['loginGuard'].unlock('quinn.quality');
});

t.test('from a break-in attempt: typed socket params, parallel logins, racing account changes, self-granted roles, same-site pages', async (t) => {
  const { callDaemon } = await import('../daemon/cli/ControlClient.js');
  let deep: unknown = 1;
  for (let i = 0; i < 1000; i++) deep = { a: deep };
  await t.rejects(callDaemon(socket, 'calls.search', { from: deep }, tokens['maria.manager']), { code: 'bad_request' }, 'an object where a string belongs: refused before it reaches the trail');
  await t.rejects(callDaemon(socket, 'calls.destroy', { id: a1.id, reason: 'x'.repeat(5000) }, tokens['maria.manager']), { code: 'bad_request' }, 'a reason over 200 characters, through the socket too');
  const v = await api.req('POST', '/api/v1/audit/verify', { token: T.tech });
  t.equal(v.json.ok, true, 'the trail still verifies');
  const { flatDetails } = await import('../daemon/services/Guard.js');
  t.same(flatDetails({ a: deep, b: 'x'.repeat(300), c: ['r1', 'r2'], d: { epoch: '2026-12', hash: 'h' }, e: [{ x: 1 }] }), { a: '(omitted)', b: 'x'.repeat(200), c: ['r1', 'r2'], d: { epoch: '2026-12', hash: 'h' }, e: '(omitted)' }, 'details are flat and bounded whatever a door lets through');

  // Parallel guesses: one password check in flight per account, so the lock holds.
  await api.req('POST', '/api/v1/users', { token: T.admin, body: { username: 'victim.user', roles: ['quality'], password: PASSWORD } });
  const guard = td.daemon.services.sessions['loginGuard'];
  guard.forgetAddress('::ffff:127.0.0.1');
  guard.forgetAddress('127.0.0.1');
  const tries = await Promise.all(Array.from({ length: 30 }, (_, i) => api.req('POST', '/api/v1/sessions', { body: { username: 'victim.user', password: i === 27 ? PASSWORD : `wrong guess ${i} xx` } })));
  const checked = tries.filter((r) => r.status === 401 || r.status === 201).length;
  t.ok(checked <= td.cfg.access.lockoutFailures, `${checked} of 30 parallel attempts had their password checked (the rest: 429)`);
  t.ok(tries.every((r) => [401, 201, 429, 423].includes(r.status)));
  guard.unlock('victim.user');
  guard.forgetAddress('::ffff:127.0.0.1');
  guard.forgetAddress('127.0.0.1');

  // A password change racing a disable: the disable holds.
  const victim = await api.token('victim.user');
  const [change, disable] = await Promise.all([
    api.req('PUT', '/api/v1/account/password', { token: victim, body: { currentPassword: PASSWORD, password: 'another victim passphrase' } }),
    (async () => {
      await sleep(30);
      return api.req('PATCH', '/api/v1/users/victim.user', { token: T.admin, body: { disabled: true, roles: ['agent'], agentId: 'x.y' } });
    })(),
  ]);
  t.equal(disable.status, 200);
  t.ok([204, 401].includes(change.status), `the change: ${change.status}`);
  const stored = await td.daemon.users.get('victim.user');
  t.match(stored, { disabled: true, roles: ['agent'] }, 'neither write lost the other');

  t.equal((await api.req('PATCH', '/api/v1/users/first.admin', { token: T.admin, body: { roles: ['admin', 'manager'] } })).status, 409, 'an administrator cannot grant themself call access');
  t.equal((await api.req('GET', `/api/v1/calls/${a1.id}`, { token: T.manager, headers: { 'sec-fetch-site': 'same-site' } })).status, 403, 'a page from another port of this host is another origin');
  const { statSync } = await import('node:fs');
  t.equal(statSync(join(td.cfg.dataDir, 'access')).mode & 0o777, 0o700, 'the accounts (password hashes) are not for the service group');
  const entries = (await api.req('POST', '/api/v1/audit/search', { token: T.admin, body: { action: 'users.update', target: 'victim.user' } })).json.entries as Array<{ details: Record<string, unknown> }>;
  t.ok(entries.every((e) => !JSON.stringify(e.details).includes('x.y')), 'an adviser id set on an account is not in the trail');
});

t.test('a Host this listener is not (DNS rebinding) is refused; IP literals, localhost and configured names pass', async (t) => {
  const { request } = await import('node:http');
  const get = (host: string): Promise<number> =>
    new Promise((resolve, reject) => {
      const req = request({ host: '127.0.0.1', port: td.daemon.adminAddress.port, path: '/health', headers: { host } }, (res) => {
        res.resume();
        resolve(res.statusCode!);
      });
      req.on('error', reject);
      req.end();
    });
  t.equal(await get('evil.example:8461'), 421);
  t.equal(await get('127.0.0.1:8461'), 200);
  t.equal(await get('[::1]:8461'), 200);
  t.equal(await get('localhost'), 200);
  t.equal(await get((await import('node:os')).hostname()), 200);
});

t.test('from a second break-in attempt: what a person types into a URL or a filter is kept only if it is an id or an account', async (t) => {
  t.equal((await api.req('GET', '/api/v1/calls/0405550100', { token: T.manager })).status, 404, 'a number where an id belongs');
  const getSearch = await api.req('GET', '/api/v1/calls/search', { token: T.manager });
  t.equal(getSearch.status, 405, 'GET /calls/search: search is a POST, not a recording called "search"');
  t.equal(getSearch.headers.get('allow'), 'POST');
  t.equal((await api.req('GET', '/api/v1/calls/358405550100/audio', { token: T.aino })).status, 404);
  t.equal((await api.req('POST', '/api/v1/audit/search', { token: T.admin, body: { from: '+358 40 555 0100' } })).status, 400, 'a number as a time');
  t.equal((await api.req('POST', '/api/v1/audit/search', { token: T.admin, body: { target: '0405550100', user: 'Typed-Secret-Word', action: 'no such action!' } })).status, 200);
  t.equal((await api.req('PATCH', '/api/v1/users/Typed-Secret-Word', { token: T.admin, body: { displayName: 'x' } })).status, 404, 'a password typed as a user name');
  t.equal((await api.req('PUT', '/api/v1/users/Typed-Secret-Word/password', { token: T.admin, body: { password: PASSWORD } })).status, 404);
  const { callDaemon } = await import('../daemon/cli/ControlClient.js');
  await t.rejects(callDaemon(socket, 'audit.search', { afterSeq: -5 }, tokens['first.admin']), { code: 'bad_request' }, 'the socket checks params against the API\'s schemas: afterSeq >= 0');
  await t.rejects(callDaemon(socket, 'users.update', { username: 'quinn.quality', disabled: 'yes' }, tokens['first.admin']), { code: 'bad_request' }, 'disabled: a boolean');
  await t.rejects(callDaemon(socket, 'calls.search', { limit: 5000 }, tokens['maria.manager']), { code: 'bad_request' }, 'limit within the schema\'s bounds');

  type Entry = { action: string; target?: string; details?: Record<string, unknown> };
  const entries: Entry[] = [];
  for (const action of ['users.password_reset', 'calls.view', 'audit.search']) entries.push(...((await api.req('POST', '/api/v1/audit/search', { token: T.admin, body: { action, limit: 1000 } })).json.entries as Entry[]));
  const last = (action: string) => entries.filter((e) => e.action === action).at(-1)!;
  t.equal(last('users.password_reset').target, '(no such user)');
  t.ok(entries.some((e) => e.action === 'calls.view' && e.target === '(not an id)'), 'a number as a call id is kept as (not an id)');
  t.ok(entries.some((e) => e.action === 'audit.search' && e.details?.from === '(not a time)'));
  t.ok(entries.some((e) => e.action === 'audit.search' && e.details?.target === '(not an id)' && e.details?.user === '(no such user)' && e.details?.action === '(not an action)'));
  t.ok(entries.some((e) => e.action === 'audit.search' && e.details?.target === 'victim.user' && e.details?.action === 'users.update'), 'real names, ids and actions are kept');
  const raw = readFileSync(join(td.cfg.dataDir, 'audit', 'trail.jsonl'), 'utf8');
  for (const needle of ['405550100', '555 0100', 'Typed-Secret-Word', 'no such action!']) t.notOk(raw.includes(needle), `the trail holds no ${needle}`);
});
