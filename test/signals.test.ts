import t from 'tap';
import { resolve } from 'node:path';
import { compileSchemaFile } from '../daemon/config/jsonSchema.js';
import { signal, startFields, startTestDaemon, sleep, waitFor, TOKEN, type TestDaemon, testActor } from './helpers/testDaemon.js';
import type { RecordingMeta } from '../daemon/store/RecordingMeta.js';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { opusinfo } from './helpers/oggTools.js';

const daemon = await startTestDaemon({ recording: { maxDurationS: 2, endReconcileMs: 1500 } });
t.teardown(() => daemon.stop());
// Every answer the tests see is checked against the published answer schema.
const answerSchema = compileSchemaFile(resolve('docs/schemas/pbx-answer.schema.json'));
const answersSeen: unknown[] = [];
const td: TestDaemon = {
  ...daemon,
  async post(body, opts) {
    const r = await daemon.post(body, opts);
    if (r.status !== 500) answersSeen.push(r.json);
    return r;
  },
};
t.teardown(() => {
  const bad = answersSeen.filter((a) => !answerSchema(a));
  if (bad.length > 0) throw new Error(`answers outside docs/schemas/pbx-answer.schema.json: ${JSON.stringify(bad.slice(0, 3))}`);
});
const get = async (id: string): Promise<RecordingMeta> => (await td.daemon.store.get(id)) as RecordingMeta;
const settled = (id: string): Promise<RecordingMeta> => waitFor(async () => {
  const m = await get(id);
  return m && m.status !== 'recording' && m.audioSha256 !== null ? m : null;
});

t.test('a start before the card\'s first audio is stamped now, not at the epoch', async (t) => {
  // A fresh daemon whose virtual card has not delivered anything yet.
  const fresh = await startTestDaemon();
  t.teardown(() => fresh.stop());
  const before = Date.now();
  const s = await fresh.post(signal('start', 'c-first', startFields('L1')));
  const m = (await fresh.daemon.store.get(s.json.recordingId)) as RecordingMeta;
  t.ok(Date.parse(m.startedAt) >= before - 1000 && Date.parse(m.startedAt) <= Date.now(), `started ${m.startedAt}`);
  await fresh.post(signal('end', 'c-first'));
});

t.test('answers in the documented order: token, then size, then JSON, then fields', async (t) => {
  const big = 'x'.repeat(17 * 1024);
  let r = await td.post(null, { token: null, raw: big });
  t.equal(r.status, 401, 'no token and a big body: 401 first');
  t.equal(r.json.error.code, 'unauthorized');
  r = await td.post(null, { token: 'wrong-token-wrong-token', raw: '{' });
  t.equal(r.status, 401);
  r = await td.post(null, { raw: big });
  t.equal(r.status, 413);
  t.equal(r.json.error.code, 'body_too_large');
  r = await td.post(null, { raw: '{"id": "a", ' });
  t.equal(r.status, 400);
  t.equal(r.json.error.code, 'malformed_json');
  r = await td.post(null, { raw: '[1,2]' });
  t.equal(r.status, 400);
  t.equal(r.json.error.code, 'invalid_type');
});

t.test('every invalid field gets its documented code and names the field', async (t) => {
  const ok = signal('start', 'c-valid', startFields('L1'));
  const cases: Array<[string, Record<string, unknown>, string, string]> = [
    ['missing id', { ...ok, id: undefined }, 'missing_field', 'id'],
    ['missing type', { ...ok, type: undefined }, 'missing_field', 'type'],
    ['a leap second not at 23:59', { ...ok, at: '2026-12-03T12:34:60Z' }, 'invalid_time', 'at'],
    ['29 February of a common year', { ...ok, at: '1900-02-29T00:00:00Z' }, 'invalid_time', 'at'],
    ['empty id', { ...ok, id: '' }, 'invalid_length', 'id'],
    ['id of 129 code points', { ...ok, id: 'é'.repeat(129) }, 'invalid_length', 'id'],
    ['numeric callId', { ...ok, callId: 42 }, 'invalid_type', 'callId'],
    ['unknown type', { ...ok, type: 'ring' }, 'invalid_value', 'type'],
    ['at without offset', { ...ok, at: '2026-12-03T10:00:00' }, 'invalid_time', 'at'],
    ['at on 30 February', { ...ok, at: '2026-02-30T10:00:00Z' }, 'invalid_time', 'at'],
    ['at as a number', { ...ok, at: 1764756000 }, 'invalid_type', 'at'],
    ['start without line', { ...ok, line: undefined }, 'missing_field', 'line'],
    ['start without serviceNumber', { ...ok, serviceNumber: undefined }, 'missing_field', 'serviceNumber'],
    ['caller of 65 characters', { ...ok, caller: '1'.repeat(65) }, 'invalid_length', 'caller'],
    ['bad presentation', { ...ok, callerPresentation: 'hidden' }, 'invalid_value', 'callerPresentation'],
    ['unknown line', { ...ok, line: 'L99' }, 'unknown_line', 'line'],
    ['answer without agent', signal('answer', 'c-x'), 'missing_field', 'agent'],
    ['agent without name', signal('answer', 'c-x', { agent: { id: 'a1' } }), 'missing_field', 'agent.name'],
    ['agent name too long', signal('answer', 'c-x', { agent: { id: 'a1', name: 'n'.repeat(129) } }), 'invalid_length', 'agent.name'],
  ];
  for (const [name, body, code, field] of cases) {
    const r = await td.post(body);
    t.equal(r.status, 400, `${name}: 400`);
    t.same(r.json.error && { code: r.json.error.code, field: r.json.error.field }, { code, field }, name);
    t.type(r.json.error?.message, 'string');
  }
  for (const at of ['0000-02-29T00:00:00Z', '2016-12-31T23:59:60Z', '2026-12-03t07:15:02.123456789z', '2026-12-03T07:15:02+14:00']) {
    const r = await td.post({ ...signal('end', `c-at-${at}`), at });
    t.equal(r.status, 202, `at ${at} is a real time`);
  }
  const emoji = await td.post({ ...signal('start', 'c-emoji', startFields('L2')), id: '😀'.repeat(128) });
  t.equal(emoji.status, 202, '128 emoji are 128 code points: allowed');
  await td.post(signal('end', 'c-emoji'));
});

t.test('a call is recorded from start to end; repeats are duplicates; unknown properties are ignored', async (t) => {
  const start = signal('start', 'c-1', { ...startFields('L1'), futureField: { x: 1 } });
  const r1 = await td.post(start);
  t.equal(r1.status, 202);
  t.equal(r1.json.status, 'accepted');
  t.match(r1.json.recordingId, /^[0-9A-HJKMNP-TV-Z]{26}$/);
  const again = await td.post(start);
  t.equal(again.status, 200);
  t.same(again.json, { status: 'duplicate' });
  const ans = await td.post(signal('answer', 'c-1', { agent: { id: 'aino.virtanen', name: 'Aino Virtanen' } }));
  t.same(ans.json, { status: 'accepted', recordingId: r1.json.recordingId });
  await sleep(1200);
  const endEv = signal('end', 'c-1');
  const end = await td.post(endEv);
  t.equal(end.status, 202);
  t.equal(end.json.recordingId, r1.json.recordingId);
  const m = await settled(r1.json.recordingId);
  t.equal(m.status, 'complete');
  t.equal(m.caller, '+358 40 555 0100');
  t.equal(m.callerNormalized, '+358405550100');
  t.equal(m.agentName, 'Aino Virtanen');
  const wall = Date.parse(m.endedAt!) - Date.parse(m.startedAt);
  t.equal(m.durationMs, wall, 'duration = end - start');
  const signalled = Date.parse(endEv.at as string) - Date.parse(start.at as string);
  t.ok(Math.abs(m.durationMs! - signalled) <= 40, `duration ${m.durationMs} ms matches the signals (${signalled} ms)`);
  t.equal(m.startedAt, new Date(Date.parse(start.at as string)).toISOString(), 'starts at the signal');
});

t.test('an end before its start is held and matched', async (t) => {
  const startAt = new Date(Date.now() - 400);
  const endAt = new Date();
  const e = await td.post(signal('end', 'c-early', {}, endAt));
  t.same(e.json, { status: 'accepted', recordingId: null });
  const s = await td.post(signal('start', 'c-early', startFields('L2'), startAt));
  t.equal(s.status, 202);
  const m = await settled(s.json.recordingId);
  t.equal(m.status, 'complete');
  t.ok(Math.abs(m.durationMs! - 400) <= 40, `duration ${m.durationMs} ms = end - start (400 ms)`);
});

t.test('an end that never finds its start is dropped after the hold', async (t) => {
  const e = await td.post(signal('end', 'c-never'));
  t.equal(e.status, 202);
  await sleep(1700);
  const s = await td.post(signal('start', 'c-never', startFields('L2')));
  t.equal(s.status, 202, 'a start after the hold opens a new recording');
  t.ok(s.json.recordingId);
  await td.post(signal('end', 'c-never'));
  const m = await settled(s.json.recordingId);
  t.equal(m.status, 'complete');
});

t.test('a second start on a busy line supersedes the first', async (t) => {
  const a = await td.post(signal('start', 'c-a', startFields('L3')));
  await sleep(600);
  const bAt = new Date();
  const b = await td.post(signal('start', 'c-b', startFields('L3'), bAt));
  const ma = await settled(a.json.recordingId);
  t.equal(ma.status, 'superseded');
  t.ok(ma.flags.includes('superseded'));
  t.ok(Math.abs(Date.parse(ma.endedAt!) - bAt.getTime()) <= 40, 'the first ends where the second starts');
  await td.post(signal('end', 'c-b'));
  const mb = await settled(b.json.recordingId);
  t.equal(mb.status, 'complete');
  t.equal(mb.codec.channels, 2, 'a split line is one 2-channel stream');
});

t.test('a call with no end is closed at the maximum length from its start\'s at, and flagged', async (t) => {
  const s = await td.post(signal('start', 'c-noend', startFields('L1'), new Date(Date.now() - 1000)));
  const m = await waitFor(async () => {
    const x = await get(s.json.recordingId);
    return x.status !== 'recording' && x.audioSha256 ? x : null;
  }, 8000);
  t.equal(m.status, 'end_missing');
  t.ok(m.flags.includes('end_missing'));
  t.ok(Math.abs(m.durationMs! - 2000) <= 40, `closed at 2 s (${m.durationMs} ms)`);
  t.same(m.flags, ['end_missing'], 'and nothing else');
});

t.test('a start older than the ring is clamped and flagged', async (t) => {
  const old = new Date(Date.now() - 60_000);
  const s = await td.post(signal('start', 'c-old', startFields('L2'), old));
  await sleep(300);
  await td.post(signal('end', 'c-old'));
  const m = await settled(s.json.recordingId);
  t.ok(m.flags.includes('clamped_start'));
  t.ok(Date.parse(m.startedAt) > old.getTime() + 40_000, 'starts at the oldest audio held, not a minute ago');
  t.same(m.gaps, [], 'no audio lost at the edge of the ring');
  const file = join(td.dir, `${m.id}.opus`);
  writeFileSync(file, await td.daemon.service.export(testActor(), m.id, 'opus'));
  t.same(opusinfo(file).problems, [], 'a long look-back still makes short pages (no muxing-delay warning)');
});

t.test('wrong methods and paths get JSON errors, and nothing crashes', async (t) => {
  const r = await fetch(td.url.replace('/events', '/nothing'), { method: 'POST', headers: { authorization: `Bearer ${TOKEN}` } });
  t.equal(r.status, 404);
  t.equal(((await r.json()) as any).error.code, 'not_found');
  const g = await fetch(td.url);
  t.equal(g.status, 404);
  const slash = await fetch(`${td.url}/`, { method: 'POST', headers: { authorization: `Bearer ${TOKEN}` }, body: '{}' });
  t.equal(slash.status, 404, 'a trailing slash is another path');
  const upper = await fetch(td.url.replace('/pbx/v1/events', '/PBX/V1/EVENTS'), { method: 'POST', headers: { authorization: `Bearer ${TOKEN}` }, body: '{}' });
  t.equal(upper.status, 404, 'paths are case-sensitive');
  const lower = await fetch(td.url, { method: 'POST', headers: { authorization: `bearer ${TOKEN}` }, body: JSON.stringify(signal('end', 'c-lower')) });
  t.equal(lower.status, 202, 'the auth scheme is case-insensitive');
  const ok = await td.post(signal('end', 'c-after-errors'));
  t.equal(ok.status, 202, 'still answering');
});

t.test('every answer seen matches the published answer schema', async (t) => {
  t.ok(answersSeen.length > 30, `${answersSeen.length} answers checked`);
  for (const a of answersSeen) t.ok(answerSchema(a), JSON.stringify(a));
});

t.test('shutdown keeps the end already signalled: a call ended just before stays complete', async (t) => {
  const start = signal('start', 'c-last', startFields('L2'), new Date(Date.now() - 1000));
  const s = await td.post(start);
  await sleep(500);
  const end = signal('end', 'c-last');
  await td.post(end);
  await td.daemon.calls.closeAll();
  const m = await settled(s.json.recordingId);
  t.equal(m.status, 'complete');
  t.same(m.flags, []);
  const signalled = Date.parse(end.at as string) - Date.parse(start.at as string);
  t.ok(Math.abs(m.durationMs! - signalled) <= 40, `ends at the end's at (${m.durationMs} ms vs ${signalled} ms)`);
});
