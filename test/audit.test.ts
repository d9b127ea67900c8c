/**
 * The audit trail (daemon/access/AuditTrail.ts): the chain, group commit, reopening, tampering of every
 * kind, a torn tail, master key rotation, queries, and a write that fails on a full disk.
 *
 * Expected hashes and MACs are computed here with node:crypto from a canonical JSON written out by hand
 * (refCanon below, or literal strings), never with the module's own functions.
 */
import t from 'tap';
import { execFileSync } from 'node:child_process';
import { createHash, createHmac, hkdfSync, randomBytes } from 'node:crypto';
import { cpSync, existsSync, mkdtempSync, readFileSync, rmSync, statfsSync, statSync, writeFileSync, appendFileSync, readdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pino from 'pino';
import { AuditTrail, AuditTrailError, type AuditActor, type AuditEntry, type AuditInput } from '../daemon/access/AuditTrail.js';
import { keyId, type MasterKey } from '../daemon/keys/MasterKey.js';

type TT = Parameters<Parameters<typeof t.test>[0]>[0];

const root = mkdtempSync(join(tmpdir(), 'callrec-audit-test-'));
t.teardown(() => rmSync(root, { recursive: true, force: true }));
let dirNo = 0;
const newDir = (name: string): string => join(root, `${++dirNo}-${name}`, 'audit');

const mkKey = (): MasterKey => {
  const key = randomBytes(32);
  return { id: keyId(key), key };
};
const KEY_A = mkKey();
const KEY_B = mkKey();
const keysOf = (current: MasterKey, ...old: MasterKey[]) => ({ current, all: [current, ...old] });

/** A logger whose lines are kept. */
function capture(): { log: pino.Logger; lines: () => Array<Record<string, unknown>> } {
  const out: string[] = [];
  return { log: pino({ level: 'info' }, { write: (s: string) => void out.push(s) }), lines: () => out.map((s) => JSON.parse(s) as Record<string, unknown>) };
}
const quiet = () => pino({ level: 'silent' });

/** A clock that moves `stepMs` on every reading. */
function clock(startIso: string, stepMs = 1000): () => Date {
  let ms = Date.parse(startIso) - stepMs;
  return () => new Date((ms += stepMs));
}

// ---- an independent canonical JSON, hash and MAC ----
function refCanon(v: unknown): string {
  if (Array.isArray(v)) return `[${v.map(refCanon).join(',')}]`;
  if (v !== null && typeof v === 'object') {
    return `{${Object.keys(v).sort().map((k) => `${JSON.stringify(k)}:${refCanon((v as Record<string, unknown>)[k])}`).join(',')}}`;
  }
  return JSON.stringify(v);
}
const sha256 = (s: string): string => createHash('sha256').update(s).digest('hex');
const refHash = (entry: Record<string, unknown>): string => {
  const { hash: _h, ...body } = entry;
  return sha256(`${String(body.prev)}\n${refCanon(body)}`);
};
const refMac = (master: MasterKey, seq: number, hash: string, at: string): string => {
  const k = Buffer.from(hkdfSync('sha256', master.key, Buffer.alloc(0), 'callrec audit trail v1', 32));
  return createHmac('sha256', k).update(`callrec audit head\n${seq}\n${hash}\n${at}`).digest('hex');
};
const ZEROS = '0'.repeat(64);

const ALICE: AuditActor = { user: 'alice', roles: ['manager'], via: 'api', from: '10.0.0.5' };
const BOB: AuditActor = { user: 'bob', roles: ['admin', 'technician'], via: 'cli', from: 'uid:1001' };
const SYSTEM: AuditActor = { user: null, roles: [], via: 'system', from: 'daemon' };
const input = (i: number): AuditInput => ({ actor: i % 2 ? BOB : ALICE, action: i % 3 ? 'calls.listen' : 'calls.export', target: `rec-${i}`, details: { n: i }, outcome: 'ok' });

// ---- the file ----
const trailFile = (dir: string): string => join(dir, 'trail.jsonl');
const fileLines = (dir: string): string[] => readFileSync(trailFile(dir), 'utf8').split('\n').slice(0, -1);
const fileEntries = (dir: string): Array<Record<string, unknown>> => fileLines(dir).map((l) => JSON.parse(l) as Record<string, unknown>);
const writeLines = (dir: string, lines: string[]): void => writeFileSync(trailFile(dir), lines.map((l) => `${l}\n`).join(''));
const kinds = (r: { problems: Array<{ kind: string; seq: number | null }> }) => r.problems.map((p) => ({ kind: p.kind, seq: p.seq }));

/** Every line links to the one before by an independently computed hash, seqs 1..n in order. */
function checkChainByHand(t: TT, dir: string, n: number): void {
  const es = fileEntries(dir);
  t.equal(es.length, n, `${n} lines`);
  let prev = ZEROS;
  let bad = 0;
  es.forEach((e, i) => {
    if (e.seq !== i + 1 || e.prev !== prev || e.hash !== refHash(e)) bad++;
    prev = e.hash as string;
  });
  t.equal(bad, 0, 'seqs 1..n, each prev the hash before it, each hash recomputed by hand');
}

t.test('append is durable, files and modes, reopening finds the same head', async (t) => {
  const dir = newDir('basic');
  const cap = capture();
  const trail = await AuditTrail.open(dir, keysOf(KEY_A), cap.log, { now: clock('2025-05-06T07:08:09.000Z') });
  t.equal(trail.head, null, 'empty: no head');
  const entries: AuditEntry[] = [];
  for (let i = 1; i <= 10; i++) {
    const e = await trail.append(input(i));
    entries.push(e);
    t.equal(fileLines(dir).length, i, `entry ${i} is in the file when append resolves`);
  }
  t.same(entries.map((e) => e.seq), [1, 2, 3, 4, 5, 6, 7, 8, 9, 10]);
  t.same(fileEntries(dir), entries, 'the file holds exactly the entries returned');
  t.same(trail.head, { seq: 10, hash: entries[9]!.hash });
  checkChainByHand(t, dir, 10);
  t.equal(statSync(dir).mode & 0o777, 0o750, 'folder 0750');
  t.equal(statSync(trailFile(dir)).mode & 0o777, 0o640, 'trail 0640');
  await trail.close();
  t.equal(statSync(join(dir, 'head.json')).mode & 0o777, 0o640, 'head.json 0640');
  const heads = cap.lines().filter((l) => l.msg === 'audit head');
  t.equal(heads.length, 1, 'close published one head');
  const hj = JSON.parse(readFileSync(join(dir, 'head.json'), 'utf8')) as Record<string, unknown>;
  t.same(heads[0]!.auditHead, { seq: 10, hash: entries[9]!.hash, mac: hj.mac }, 'the journal line: seq, hash, mac');
  t.equal(heads[0]!.level, 30, 'at info');
  await t.rejects(trail.append(input(11)), AuditTrailError, 'closed: append rejects');

  const again = await AuditTrail.open(dir, keysOf(KEY_A), quiet());
  t.same(again.head, { seq: 10, hash: entries[9]!.hash }, 'reopened: same head');
  const e11 = await again.append(input(11));
  t.equal(e11.seq, 11);
  t.equal(e11.prev, entries[9]!.hash, 'the chain goes on');
  t.same(await again.verify(), { ok: true, entries: 11, head: { seq: 11, hash: e11.hash }, problems: [] }, 'and verifies');
  await again.close();
});

t.test('the hash of entry 1 is sha256 of 64 zeros, a newline and the canonical JSON', async (t) => {
  const dir = newDir('hash');
  const trail = await AuditTrail.open(dir, keysOf(KEY_A), quiet(), { now: () => new Date('2025-03-04T05:06:07.089Z') });
  const e1 = await trail.append({ outcome: 'ok', target: 'rec-1', details: { format: 'opus', bytes: 12, nested: { z: [1, { b: true, a: null }], a: 'ä"\n' } }, action: 'calls.export', actor: ALICE });
  // Keys sorted at every level, no whitespace, written out by hand.
  const canonical1 = '{"action":"calls.export","actor":{"from":"10.0.0.5","roles":["manager"],"user":"alice","via":"api"},"at":"2025-03-04T05:06:07.089Z",'
    + '"details":{"bytes":12,"format":"opus","nested":{"a":"ä\\"\\n","z":[1,{"a":null,"b":true}]}},"outcome":"ok","prev":"' + ZEROS + '","seq":1,"target":"rec-1"}';
  const h1 = createHash('sha256').update(`${ZEROS}\n${canonical1}`).digest('hex');
  t.equal(e1.hash, h1, 'entry 1 hash');
  t.equal(e1.prev, ZEROS);
  t.equal(e1.at, '2025-03-04T05:06:07.089Z');
  t.equal(fileLines(dir)[0], canonical1.replace(',"outcome"', `,"hash":"${h1}","outcome"`), 'the line is the canonical JSON with the hash in its sorted place');

  // Integer-like keys sort as strings ("10" < "2" < "b"), whatever order an object keeps them in; undefined is left out.
  const e2 = await trail.append({ actor: SYSTEM, action: 'audit.test', details: { b: 1, 2: 'two', 10: 'ten', u: undefined }, outcome: 'failed' });
  const canonical2 = '{"action":"audit.test","actor":{"from":"daemon","roles":[],"user":null,"via":"system"},"at":"2025-03-04T05:06:07.089Z",'
    + '"details":{"10":"ten","2":"two","b":1},"outcome":"failed","prev":"' + h1 + '","seq":2}';
  t.equal(e2.hash, createHash('sha256').update(`${h1}\n${canonical2}`).digest('hex'), 'entry 2 hash, chained on entry 1');
  t.notOk('target' in e2, 'no target: no key');
  t.same(e2.details, { 10: 'ten', 2: 'two', b: 1 }, 'details as stored');

  await t.rejects(trail.append({ actor: ALICE, action: 'x', outcome: 'maybe' as never }), TypeError, 'a bad outcome is refused');
  await t.rejects(trail.append({ actor: { ...ALICE, via: 'door' as never }, action: 'x', outcome: 'ok' }), TypeError, 'a bad actor is refused');
  await t.rejects(trail.append({ actor: ALICE, action: 'x', details: { big: 1n }, outcome: 'ok' }), TypeError, 'a BigInt is refused');
  const withExtras = { ...ALICE, sessionId: 'abc', agentId: 'A-17' } as AuditActor;
  const e3 = await trail.append({ actor: withExtras, action: 'calls.search', outcome: 'ok' });
  t.equal(e3.seq, 3, 'refused entries took no seq');
  t.same(e3.actor, ALICE, 'only user, roles, via and from of an actor are kept');
  await trail.close();
});

t.test('200 appends at once: consecutive seqs in call order, one chain', async (t) => {
  const dir = newDir('concurrent');
  const trail = await AuditTrail.open(dir, keysOf(KEY_A), quiet());
  const results = await Promise.all(Array.from({ length: 200 }, (_, i) => trail.append({ ...input(i), details: { call: i } })));
  t.same(results.map((e) => e.seq), Array.from({ length: 200 }, (_, i) => i + 1), 'seq i+1 for call i');
  t.same(results.map((e) => (e.details as { call: number }).call), Array.from({ length: 200 }, (_, i) => i), 'in call order');
  checkChainByHand(t, dir, 200);
  t.same(trail.head, { seq: 200, hash: results[199]!.hash });
  await trail.publishHead();
  t.same(await trail.verify(), { ok: true, entries: 200, head: { seq: 200, hash: results[199]!.hash }, problems: [] });
  await trail.close();
});

t.test('daily digests and heads carry MACs under the audit key', async (t) => {
  const dir = newDir('digests');
  const cap = capture();
  let now = Date.parse('2025-06-01T23:59:57.000Z');
  const trail = await AuditTrail.open(dir, keysOf(KEY_A), cap.log, { now: () => new Date(now) });
  const es: AuditEntry[] = [];
  for (let i = 1; i <= 3; i++, now += 1000) es.push(await trail.append(input(i)));
  t.notOk(existsSync(join(dir, 'digests', '2025-06-01.json')), 'no digest before a head or a new day');
  for (let i = 4; i <= 5; i++, now += 1000) es.push(await trail.append(input(i))); // 2025-06-02T00:00:00, :01
  const head = await trail.publishHead(); // after the day's digest, which is written in the background
  const d1 = JSON.parse(readFileSync(join(dir, 'digests', '2025-06-01.json'), 'utf8')) as Record<string, any>;
  t.match(d1, { date: '2025-06-01', firstSeq: 1, lastSeq: 3, count: 3, head: { seq: 3, hash: es[2]!.hash, keyId: KEY_A.id } }, 'the first entry of 06-02 finalised 06-01');
  t.equal(d1.head.mac, refMac(KEY_A, 3, es[2]!.hash, d1.head.at), 'its MAC, recomputed by hand');
  t.match(head, { seq: 5, hash: es[4]!.hash, at: new Date(now).toISOString(), keyId: KEY_A.id });
  t.equal(head!.mac, refMac(KEY_A, 5, es[4]!.hash, head!.at), 'head MAC recomputed by hand');
  t.same(JSON.parse(readFileSync(join(dir, 'head.json'), 'utf8')), head, 'head.json');
  const d2 = JSON.parse(readFileSync(join(dir, 'digests', '2025-06-02.json'), 'utf8')) as Record<string, any>;
  t.same(d2, { date: '2025-06-02', firstSeq: 4, lastSeq: 5, count: 2, head }, 'today\'s digest');
  t.same(cap.lines().filter((l) => l.msg === 'audit head').map((l) => l.auditHead), [{ seq: 5, hash: es[4]!.hash, mac: head!.mac }], 'logged for the journal');
  t.same(await trail.verify(), { ok: true, entries: 5, head: { seq: 5, hash: es[4]!.hash }, problems: [] });
  await trail.close();
});

t.test('the head timer publishes when the head moved', async (t) => {
  const dir = newDir('timer');
  const cap = capture();
  const trail = await AuditTrail.open(dir, keysOf(KEY_A), cap.log, { headEveryMs: 50 });
  await trail.append(input(1));
  const count = () => cap.lines().filter((l) => l.msg === 'audit head').length;
  for (let i = 0; i < 100 && count() === 0; i++) await new Promise((r) => setTimeout(r, 20));
  t.equal(count(), 1, 'published once');
  await new Promise((r) => setTimeout(r, 200));
  t.equal(count(), 1, 'not again while the head stands still');
  await trail.append(input(2));
  for (let i = 0; i < 100 && count() === 1; i++) await new Promise((r) => setTimeout(r, 20));
  t.equal(count(), 2, 'again after it moved');
  await trail.close();
});

// ---- tampering: one base trail of 20 entries with a head and a digest, copied for each case ----
const BASE = newDir('base');
const baseCap = capture();
const baseHashes: string[] = [];
{
  const trail = await AuditTrail.open(BASE, keysOf(KEY_A), baseCap.log, { now: clock('2025-02-10T10:00:00.000Z') });
  for (let i = 1; i <= 20; i++) baseHashes.push((await trail.append(input(i))).hash);
  await trail.close();
}
const BASE_DIGEST = readdirSync(join(BASE, 'digests'))[0]!;
const copyBase = (name: string): string => {
  const dir = newDir(name);
  cpSync(BASE, dir, { recursive: true });
  return dir;
};
/** Opens a (tampered) copy, verifies it, closes it. */
async function verifyCopy(dir: string, keys = keysOf(KEY_A), heads?: Array<{ seq: number; hash: string }>) {
  const cap = capture();
  const trail = await AuditTrail.open(dir, keys, cap.log);
  const r = await trail.verify(heads ? { heads } : {});
  await trail.close();
  return { r, logs: cap.lines() };
}

t.test('tampering', async (t) => {
  t.test('untouched: ok', async (t) => {
    const { r } = await verifyCopy(copyBase('untouched'));
    t.same(r, { ok: true, entries: 20, head: { seq: 20, hash: baseHashes[19] }, problems: [] });
  });

  t.test('a field of entry 5 edited: edited, 5', async (t) => {
    const dir = copyBase('edit');
    const lines = fileLines(dir);
    t.ok(lines[4]!.includes('"outcome":"ok"'));
    lines[4] = lines[4]!.replace('"outcome":"ok"', '"outcome":"denied"');
    writeLines(dir, lines);
    const { r, logs } = await verifyCopy(dir);
    t.same(kinds(r), [{ kind: 'edited', seq: 5 }]);
    t.equal(r.ok, false);
    t.ok(logs.some((l) => l.level === 50 && String(l.msg).includes('damaged')), 'open logged an error');
  });

  t.test('entry 5 edited and its hash recomputed: edited, 5 (entry 6 no longer links to it)', async (t) => {
    const dir = copyBase('edit-rehash');
    const es = fileEntries(dir);
    es[4]!.action = 'calls.search';
    es[4]!.hash = refHash(es[4]!);
    writeLines(dir, es.map(refCanon));
    const { r } = await verifyCopy(dir);
    t.same(kinds(r), [{ kind: 'edited', seq: 5 }]);
  });

  t.test('entry 5 removed: removed, 5', async (t) => {
    const dir = copyBase('remove');
    const lines = fileLines(dir);
    lines.splice(4, 1);
    writeLines(dir, lines);
    const { r } = await verifyCopy(dir);
    t.same(kinds(r), [{ kind: 'removed', seq: 5 }]);
  });

  t.test('entries 4 and 5 swapped: reordered, 4', async (t) => {
    const dir = copyBase('swap');
    const lines = fileLines(dir);
    [lines[3], lines[4]] = [lines[4]!, lines[3]!];
    writeLines(dir, lines);
    const { r } = await verifyCopy(dir);
    t.same(kinds(r), [{ kind: 'reordered', seq: 4 }]);
  });

  t.test('entries 4 and 5 swapped and renumbered, hashes recomputed: reordered', async (t) => {
    const dir = copyBase('swap-renumber');
    const es = fileEntries(dir);
    [es[3], es[4]] = [es[4]!, es[3]!];
    es[3]!.seq = 4;
    es[4]!.seq = 5;
    for (const e of [es[3]!, es[4]!]) e.hash = refHash(e);
    writeLines(dir, es.map(refCanon));
    const { r } = await verifyCopy(dir);
    // Entry 5 (was 4) links to entry 3; entry 4 (was 5) and entry 6 link to hashes no longer in the trail.
    t.same(kinds(r), [{ kind: 'edited', seq: 3 }, { kind: 'reordered', seq: 5 }, { kind: 'edited', seq: 5 }], 'a move found, in the right place');
    t.equal(r.ok, false);
  });

  t.test('the last 3 entries cut after a head was published: cut_tail', async (t) => {
    const dir = copyBase('cut');
    writeLines(dir, fileLines(dir).slice(0, 17));
    const { r } = await verifyCopy(dir);
    t.same(kinds(r), [{ kind: 'cut_tail', seq: 18 }]);
    t.match(r.problems[0]!.message, /head\.json/);
    t.match(r.problems[0]!.message, /digest/);
    const again = await verifyCopy(dir);
    t.same(kinds(again.r), [{ kind: 'cut_tail', seq: 18 }], 'still reported after a restart: the daemon did not overwrite the evidence');
  });

  t.test('the tail cut and head.json deleted, a digest kept: cut_tail', async (t) => {
    const dir = copyBase('cut-nohead');
    writeLines(dir, fileLines(dir).slice(0, 17));
    rmSync(join(dir, 'head.json'));
    const { r } = await verifyCopy(dir);
    t.same(kinds(r), [{ kind: 'cut_tail', seq: 18 }]);
    t.match(r.problems[0]!.message, /digest/);
  });

  t.test('head.json forged with a wrong MAC: bad_head', async (t) => {
    const dir = copyBase('forged');
    const h = JSON.parse(readFileSync(join(dir, 'head.json'), 'utf8')) as Record<string, unknown>;
    writeFileSync(join(dir, 'head.json'), JSON.stringify({ ...h, seq: 25, hash: 'a'.repeat(64), mac: 'b'.repeat(64) }));
    const { r } = await verifyCopy(dir);
    t.same(kinds(r), [{ kind: 'bad_head', seq: 25 }]);
    t.match(r.problems[0]!.message, /MAC/);
  });

  t.test('a head passed in, beyond the end: cut_tail; at a seq with another hash: edited', async (t) => {
    const dir = copyBase('given');
    const { r } = await verifyCopy(dir, keysOf(KEY_A), [{ seq: 10, hash: baseHashes[9]! }, { seq: 23, hash: 'c'.repeat(64) }]);
    t.same(kinds(r), [{ kind: 'cut_tail', seq: 21 }]);
    const { r: r2 } = await verifyCopy(dir, keysOf(KEY_A), [{ seq: 10, hash: 'd'.repeat(64) }]);
    t.same(kinds(r2), [{ kind: 'edited', seq: 10 }]);
    const { r: r3 } = await verifyCopy(dir, keysOf(KEY_A), [{ seq: 20, hash: baseHashes[19]! }]);
    t.equal(r3.ok, true, 'a matching head: ok');
  });

  t.test('the whole chain rewritten consistently (no key needed): head.json and the digest catch it; without them only the journal does', async (t) => {
    const dir = copyBase('rewrite');
    const es = fileEntries(dir);
    let prev = ZEROS;
    for (const e of es) {
      (e.actor as AuditActor).from = '192.0.2.66';
      e.prev = prev;
      prev = refHash(e);
      e.hash = prev;
    }
    writeLines(dir, es.map(refCanon));
    const { r } = await verifyCopy(dir);
    t.same(kinds(r), [{ kind: 'edited', seq: 20 }, { kind: 'edited', seq: 20 }], 'head.json and the digest disagree at 20');

    const bare = copyBase('rewrite-bare');
    writeLines(bare, es.map(refCanon));
    rmSync(join(bare, 'head.json'));
    rmSync(join(bare, 'digests'), { recursive: true });
    const journal = baseCap.lines().filter((l) => l.msg === 'audit head').map((l) => l.auditHead as { seq: number; hash: string });
    t.equal(journal.length, 1);
    const { r: alone } = await verifyCopy(bare);
    t.equal(alone.ok, true, 'with every anchor on the box deleted the rewrite is consistent by itself');
    const { r: withJournal } = await verifyCopy(bare, keysOf(KEY_A), journal);
    t.same(kinds(withJournal), [{ kind: 'edited', seq: 20 }], 'the head from the journal catches it');
  });

  t.test('entries and no head or digest at all: no_head (once two head periods have passed)', async (t) => {
    const dir = newDir('nohead');
    let now = Date.parse('2025-06-01T12:00:00.000Z');
    const trail = await AuditTrail.open(dir, keysOf(KEY_A), quiet(), { now: () => new Date(now), headEveryMs: 60_000 });
    t.same(await trail.verify(), { ok: true, entries: 0, head: null, problems: [] }, 'empty: ok');
    await trail.append(input(1));
    t.equal((await trail.verify()).ok, true, 'a fresh entry, before its first head is due: ok');
    now += 120_001;
    const r = await trail.verify();
    t.same(kinds(r), [{ kind: 'no_head', seq: null }]);
    await trail.publishHead();
    t.equal((await trail.verify()).ok, true, 'after a head: ok');
    await trail.close();
  });
});

t.test('a torn last line is cut off on open and the repair is an entry', async (t) => {
  const dir = copyBase('torn');
  const torn = '{"action":"calls.listen","actor":{"fr';
  appendFileSync(trailFile(dir), torn);
  const cap = capture();
  const trail = await AuditTrail.open(dir, keysOf(KEY_A), cap.log);
  const es = fileEntries(dir);
  t.equal(es.length, 21, 'the torn bytes are gone, one entry added');
  t.match(es[20], { seq: 21, prev: baseHashes[19], action: 'audit.repaired', actor: { user: null, roles: [], via: 'system', from: 'daemon' }, details: { tornBytes: Buffer.byteLength(torn) }, outcome: 'ok' });
  t.ok(readFileSync(trailFile(dir), 'utf8').endsWith('}\n'), 'the file ends with a whole line');
  checkChainByHand(t, dir, 21);
  t.ok(cap.lines().some((l) => l.level === 40 && l.auditTornBytes === Buffer.byteLength(torn)), 'logged a warning');
  t.same(await trail.verify(), { ok: true, entries: 21, head: { seq: 21, hash: es[20]!.hash }, problems: [] }, 'verifies (the repair published a head)');
  await trail.close();
});

t.test('master key rotation: heads MAC\'d under the old key verify while it is loaded, and are re-MAC\'d under the new one', async (t) => {
  const gone = copyBase('rotated-key-gone');
  const { r: r0 } = await verifyCopy(gone, keysOf(KEY_B));
  t.same(kinds(r0), [{ kind: 'bad_head', seq: 20 }, { kind: 'bad_head', seq: 20 }], 'without the old key: neither head.json nor the digest can be checked');
  t.match(r0.problems[0]!.message, new RegExp(KEY_A.id));

  const dir = copyBase('rotated');
  const oldHead = JSON.parse(readFileSync(join(dir, 'head.json'), 'utf8')) as Record<string, any>;
  t.equal(oldHead.keyId, KEY_A.id);
  t.equal(oldHead.mac, refMac(KEY_A, 20, baseHashes[19]!, oldHead.at), 'MAC\'d under the old key');
  const cap = capture();
  const trail = await AuditTrail.open(dir, keysOf(KEY_B, KEY_A), cap.log);
  t.same(await trail.verify(), { ok: true, entries: 20, head: { seq: 20, hash: baseHashes[19] }, problems: [] }, 'old key in all: verifies');
  const newHead = JSON.parse(readFileSync(join(dir, 'head.json'), 'utf8')) as Record<string, any>;
  t.same(newHead, { ...oldHead, keyId: KEY_B.id, mac: refMac(KEY_B, 20, baseHashes[19]!, oldHead.at) }, 'head.json re-MAC\'d under the new key, same seq, hash and time');
  const digest = JSON.parse(readFileSync(join(dir, 'digests', BASE_DIGEST), 'utf8')) as Record<string, any>;
  t.equal(digest.head.keyId, KEY_B.id, 'the digest too');
  t.ok(cap.lines().some((l) => l.auditRekeyed === 2), 'logged');
  await trail.close();
  const { r } = await verifyCopy(dir, keysOf(KEY_B));
  t.equal(r.ok, true, 'the old key retired: still verifies');
});

t.test('query: filters and paging', async (t) => {
  const dir = newDir('query');
  let now = Date.parse('2025-01-01T23:57:00.000Z');
  const trail = await AuditTrail.open(dir, keysOf(KEY_A), quiet(), { now: () => new Date(now) });
  const actors = [ALICE, BOB, SYSTEM];
  const made: Array<{ seq: number; at: number; user: string | null; action: string; target: string }> = [];
  for (let i = 0; i < 12; i++, now += 60_000) {
    const spec = { actor: actors[i % 3]!, action: i % 4 === 0 ? 'calls.export' : 'calls.listen', target: `rec-${i % 5}` };
    await trail.append({ ...spec, outcome: 'ok' });
    made.push({ seq: i + 1, at: now, user: spec.actor.user, action: spec.action, target: spec.target });
  }
  const seqs = (r: { entries: AuditEntry[] }) => r.entries.map((e) => e.seq);
  const expect = (f: (m: (typeof made)[number]) => boolean) => made.filter(f).map((m) => m.seq);

  t.same(seqs(await trail.query({ user: 'alice', limit: 100 })), expect((m) => m.user === 'alice'), 'user');
  t.same(seqs(await trail.query({ user: 'alice', limit: 100 })), [1, 4, 7, 10]);
  t.same(seqs(await trail.query({ action: 'calls.export', limit: 100 })), [1, 5, 9]);
  t.same(seqs(await trail.query({ target: 'rec-1', limit: 100 })), [2, 7, 12]);
  t.same(seqs(await trail.query({ user: 'bob', action: 'calls.listen', limit: 100 })), [2, 8, 11]);
  t.same(seqs(await trail.query({ from: '2025-01-02T00:00:00Z', to: '2025-01-02T00:03:00Z', limit: 100 })), [4, 5, 6], 'from inclusive, to exclusive');
  t.same(seqs(await trail.query({ from: '2025-01-02T02:00:00.000+02:00', to: '2025-01-02T00:03:00.001Z', limit: 100 })), [4, 5, 6, 7], 'offsets understood');
  t.same(seqs(await trail.query({ afterSeq: 9, limit: 100 })), [10, 11, 12], 'afterSeq');

  const pages: number[][] = [];
  const nexts: Array<number | null> = [];
  let after: number | undefined;
  for (;;) {
    const r = await trail.query({ limit: 5, ...(after !== undefined ? { afterSeq: after } : {}) });
    pages.push(seqs(r));
    nexts.push(r.nextAfterSeq);
    if (r.nextAfterSeq === null) break;
    after = r.nextAfterSeq;
  }
  t.same(pages, [[1, 2, 3, 4, 5], [6, 7, 8, 9, 10], [11, 12]], 'pages of 5');
  t.same(nexts, [5, 10, null]);
  const exact = await trail.query({ limit: 4, afterSeq: 8 });
  t.same([seqs(exact), exact.nextAfterSeq], [[9, 10, 11, 12], null], 'a page that takes the last match exactly: no next');
  const sys1 = await trail.query({ user: 'bob', limit: 2 });
  t.same([seqs(sys1), sys1.nextAfterSeq], [[2, 5], 5]);
  const sys2 = await trail.query({ user: 'bob', limit: 2, afterSeq: 5 });
  t.same([seqs(sys2), sys2.nextAfterSeq], [[8, 11], null], 'filtered paging');
  t.same(await trail.query({ user: 'carol', limit: 10 }), { entries: [], nextAfterSeq: null });
  await t.rejects(trail.query({ limit: 0 }), RangeError);
  await t.rejects(trail.query({ from: 'yesterday', limit: 1 }), RangeError);
  await trail.close();
});

t.test('a write that fails on a full disk: the entries are refused, the chain stays whole, appending goes on', async (t) => {
  const mnt = mkdtempSync(join(tmpdir(), 'callrec-audit-tmpfs-'));
  try {
    execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=1m,mode=0750', 'tmpfs', mnt], { stdio: 'pipe' });
  } catch (err) {
    throw new Error(`this test mounts a 1 MiB tmpfs and needs root (mount -t tmpfs): ${(err as Error).message}`);
  }
  t.teardown(() => {
    execFileSync('umount', ['-l', mnt]);
    rmSync(mnt, { recursive: true, force: true });
  });
  const dir = join(mnt, 'audit');
  const filler = join(mnt, 'filler');
  const cap = capture();
  const trail = await AuditTrail.open(dir, keysOf(KEY_A), cap.log);
  const first: AuditEntry[] = [];
  for (let i = 1; i <= 5; i++) first.push(await trail.append(input(i)));
  await trail.publishHead();
  const before = readFileSync(trailFile(dir));

  const s = statfsSync(mnt);
  try {
    writeFileSync(filler, Buffer.alloc(s.bavail * s.bsize));
  } catch {
    // full
  }
  const big = 'x'.repeat(3000);
  const results = await Promise.allSettled(Array.from({ length: 20 }, (_, i) => trail.append({ ...input(100 + i), details: { pad: big } })));
  t.ok(results.every((r) => r.status === 'rejected' && r.reason instanceof AuditTrailError), 'every entry refused');
  t.match((results[0] as PromiseRejectedResult).reason.message, /ENOSPC|no space/i);
  t.ok(readFileSync(trailFile(dir)).equals(before), 'the file is cut back to its last durable entry');
  t.same(trail.head, { seq: 5, hash: first[4]!.hash }, 'head unchanged');
  t.ok(cap.lines().some((l) => l.level === 50 && String(l.msg).includes('write failed')), 'logged');

  rmSync(filler);
  const e6 = await trail.append(input(6));
  t.equal(e6.seq, 6, 'appending goes on at the next seq');
  t.equal(e6.prev, first[4]!.hash, 'chained on the last durable entry');
  checkChainByHand(t, dir, 6);
  await trail.publishHead();
  t.same(kinds(await trail.verify()), []);
  await trail.close();
});
