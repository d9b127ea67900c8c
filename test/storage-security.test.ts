import t from 'tap';
import { execFile } from 'node:child_process';
import { cpSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { promisify } from 'node:util';
import pino from 'pino';
import { stringify } from 'yaml';
import { Daemon } from '../daemon/Daemon.js';
import { loadConfig } from '../daemon/config/loadConfig.js';
import { Retention } from '../daemon/store/Retention.js';
import { epochsOnDisk } from '../daemon/store/rebuildIndex.js';
import { audioPath, epochStorePath, sidecarPath } from '../daemon/store/recordingPaths.js';
import type { RecordingMeta } from '../daemon/store/RecordingMeta.js';
import { opusinfo } from './helpers/oggTools.js';
import { signal, sleep, waitFor, testActor } from './helpers/testDaemon.js';
import { cliLogin, managerToken } from './helpers/people.js';

const run = promisify(execFile);
const CLI = resolve('dist/daemon/bin/callrec.js');
const sessions = new Map<string, Record<string, string>>();
/** The CLI, logged in as a manager of the daemon behind --socket (made and logged in on first use). */
async function cli(args: string[]): Promise<{ stdout: string; stderr: string }> {
  const i = args.indexOf('--socket');
  const sock = i >= 0 ? args[i + 1]! : null;
  if (sock && !sessions.has(sock)) {
    await managerToken(sock);
    sessions.set(sock, await cliLogin(sock, 'test.manager'));
  }
  return run(process.execPath, [CLI, ...args], { env: { ...process.env, ...(sock ? sessions.get(sock) : {}) } });
}
const token = 'storage-test-token-0123456789';

/** Every file under `dir`, as bytes. */
function allFiles(dir: string): Array<[string, Buffer]> {
  const out: Array<[string, Buffer]> = [];
  const walk = (d: string): void => {
    for (const e of readdirSync(d, { withFileTypes: true })) {
      const p = join(d, e.name);
      if (e.isDirectory()) walk(p);
      else if (e.isFile()) out.push([p, readFileSync(p)]);
    }
  };
  walk(dir);
  return out;
}

/** Files under `dir` holding any of `needles` (as UTF-8, and as UTF-16LE for good measure). */
function scan(dir: string, needles: string[]): string[] {
  const hits: string[] = [];
  for (const [file, bytes] of allFiles(dir)) {
    for (const n of needles) {
      if (bytes.includes(Buffer.from(n, 'utf8')) || bytes.includes(Buffer.from(n, 'utf16le'))) hits.push(`${file}: ${n}`);
    }
  }
  return hits;
}

function setup(extra: Record<string, unknown> = {}): { dir: string; cfgFile: string } {
  const dir = mkdtempSync(join(tmpdir(), 'callrec-sec-'));
  const cfgFile = join(dir, 'config.yaml');
  writeFileSync(cfgFile, stringify({
    dataDir: join(dir, 'data'),
    cards: [{ id: 'v0', backend: 'virtual', channels: 4, readMs: 20 }],
    lines: [{ id: 'L1', card: 'v0', channels: [0] }, { id: 'L2', card: 'v0', channels: [1] }, { id: 'L3', card: 'v0', channels: [2] }],
    signals: { port: 0, token },
    control: { socket: join(dir, 'callrec.sock') },
    keys: { masterFile: join(dir, 'keys', 'master.key'), createMasterFile: true },
    storage: { requireEncryptedDisk: false, reserveMb: 8, floorMb: 1 },
    admin: { port: 0 },
    log: { level: 'info' },
    ...extra,
  }));
  return { dir, cfgFile };
}

async function startDaemon(cfgFile: string, logs: string[] = []): Promise<Daemon> {
  const cfg = loadConfig(cfgFile);
  const log = pino({ level: 'info' }, { write: (s: string) => void logs.push(s) });
  const d = new Daemon(cfg, log);
  await d.start();
  return d;
}

async function record(d: Daemon, callId: string, line: string, caller: string, agent: { id: string; name: string }, at = new Date()): Promise<RecordingMeta> {
  const url = `http://127.0.0.1:${d.pbxAddress.port}/pbx/v1/events`;
  const post = (b: unknown) => fetch(url, { method: 'POST', headers: { authorization: `Bearer ${token}` }, body: JSON.stringify(b) }).then((r) => r.json() as Promise<any>);
  const { recordingId } = await post(signal('start', callId, { line, caller, serviceNumber: '029 497 002' }, at));
  await post(signal('answer', callId, { agent }));
  await sleep(700);
  await post(signal('end', callId));
  return waitFor(async () => {
    const m = (await d.store.get(recordingId)) as RecordingMeta;
    return m.status !== 'recording' && m.storedSha256 ? m : null;
  });
}

const forms = (spaced: string): string[] => {
  const digits = spaced.replace(/\D/g, '');
  const national = `0${digits.slice(3)}`;
  return [spaced, `+${digits}`, digits, national, `${national.slice(0, 3)} ${national.slice(3, 6)} ${national.slice(6)}`, digits.slice(3)];
};

t.test('nothing personal in the clear; a destroyed call leaves no trace; the others stay playable', async (t) => {
  const { dir, cfgFile } = setup();
  const logs: string[] = [];
  const d = await startDaemon(cfgFile, logs);
  t.teardown(() => d.stop());
  await sleep(300);
  const a = await record(d, 'sec-a', 'L1', '+358 40 777 1234', { id: 'ilmari.e', name: 'Ilmari Erkkilä' });
  const b = await record(d, 'sec-b', 'L2', '+358 50 888 4321', { id: 'sanna.k', name: 'Sanna Kivimäki' });
  const needlesA = [...forms('+358 40 777 1234'), 'Ilmari Erkkilä', 'ilmari.e'];
  const needlesB = [...forms('+358 50 888 4321'), 'Sanna Kivimäki', 'sanna.k'];
  t.same(scan(join(dir, 'data'), [...needlesA, ...needlesB]), [], 'before any destruction: no number or name anywhere in the data directory');
  t.same(scan(dir, ['OggS', 'OpusHead']).filter((h) => !h.includes('/speech/')), [], 'no plain Ogg anywhere');
  t.same(logs.filter((l) => needlesA.some((n) => l.includes(n)) || needlesB.some((n) => l.includes(n))), [], 'no log line either');
  t.equal(statSync(join(dir, 'keys', 'master.key')).mode & 0o777, 0o600, 'the demo key file is 0600');

  const socket = join(dir, 'callrec.sock');
  const r = await cli(['--socket', socket, 'calls', 'destroy', a.id, '--reason', 'caller objected', '--json']);
  t.match(JSON.parse(r.stdout), { id: a.id, status: 'destroyed', reason: 'caller objected', role: 'manager' });
  t.notOk(existsSync(audioPath(d.cfg.dataDir, a.id, a.startedAt)), 'audio unlinked');
  t.notOk(existsSync(sidecarPath(d.cfg.dataDir, a.id, a.startedAt)), 'sidecar unlinked');
  const listed = JSON.parse((await cli(['--socket', socket, 'calls', 'list', '--json', '--include-destroyed'])).stdout) as Array<{ id: string; status: string }>;
  t.same(listed.map((x) => [x.id, x.status]), [[b.id, 'complete'], [a.id, 'destroyed']]);
  t.same(JSON.parse((await cli(['--socket', socket, 'calls', 'list', '--json', '--caller', '040 777 1234'])).stdout), [], 'no longer found by number');
  t.same(scan(join(dir, 'data'), needlesA), [], 'after destruction: still nothing');
  const exported = join(dir, 'b.opus');
  writeFileSync(exported, await d.service.export(testActor(), b.id, 'opus'));
  t.same(opusinfo(exported).problems, [], 'the other call still plays');
  rmSync(exported);
  const v = await cli(['--socket', socket, 'verify', '--all', '--json']);
  t.same(JSON.parse(v.stdout), { checked: 1, failed: [] });
});

t.test('verify names the recording and segment of a flipped byte; export refuses it', async (t) => {
  const { dir, cfgFile } = setup();
  const d = await startDaemon(cfgFile);
  t.teardown(() => d.stop());
  await sleep(300);
  const m = await record(d, 'flip', 'L1', '0401234567', { id: 'x', name: 'X' });
  const file = audioPath(d.cfg.dataDir, m.id, m.startedAt);
  const bytes = readFileSync(file);
  bytes[bytes.length - 40]! ^= 0x10;
  writeFileSync(file, bytes);
  const res = await d.service.verify(testActor(), m.id);
  t.equal(res.ok, false);
  const segments = (await import('../daemon/store/sealed/openSealed.js')).openSealed(readFileSync(file).fill(0, 0, 0), await d.store.dataKey(m.id), true).segments;
  const hit = segments.length; // the first segment that does not open is the one holding the flipped byte
  t.equal(res.problem, `recording ${m.id}: segment ${hit}: authentication failed (altered, moved, swapped or from another recording)`, 'names the recording and the segment');
  await t.rejects(d.service.export(testActor(), m.id, 'wav'), { code: 'integrity' });
  const res2 = await cli(['--socket', join(dir, 'callrec.sock'), 'verify', m.id]).catch((e: { code: number; stdout: string }) => e);
  t.equal((res2 as { code: number }).code, 1);
  t.match((res2 as { stdout: string }).stdout, /1 checked, 1 failed/);
});

t.test('a destruction interrupted at any step is finished by a restart, and a restored backup cannot bring it back', async (t) => {
  const { dir, cfgFile } = setup();
  let d = await startDaemon(cfgFile);
  await sleep(300);
  const m = await record(d, 'int-1', 'L1', '+358 40 111 2222', { id: 'y', name: 'Y' });
  const n = await record(d, 'int-2', 'L2', '+358 40 333 4444', { id: 'z', name: 'Z' });
  await d.stop();
  const backup = join(dir, 'backup');
  cpSync(join(dir, 'data'), backup, { recursive: true });

  // Step 1 only: the intent is logged, then the power went.
  const log = join(dir, 'data', 'destroyed.log');
  writeFileSync(log, `${JSON.stringify({ id: m.id, startedAt: m.startedAt, reason: 'objection', role: 'operator', at: new Date().toISOString() })}\n`);
  d = await startDaemon(cfgFile);
  t.match(await d.store.get(m.id), { status: 'destroyed', reason: 'objection' }, 'restart finished it');
  t.notOk(existsSync(audioPath(d.cfg.dataDir, m.id, m.startedAt)));
  // Steps 1-2 done, files still there (crash before unlink): put the files back and restart.
  await d.stop();
  cpSync(join(backup, 'recordings'), join(dir, 'data', 'recordings'), { recursive: true });
  t.ok(existsSync(audioPath(dir + '/data', m.id, m.startedAt)), 'files back, as after a crash before step 3');
  d = await startDaemon(cfgFile);
  t.notOk(existsSync(audioPath(d.cfg.dataDir, m.id, m.startedAt)), 'restart unlinked them');
  t.notOk(existsSync(sidecarPath(d.cfg.dataDir, m.id, m.startedAt)));
  await d.stop();

  // A restore of the whole backup (index, files, but the destruction log kept): destroyed again.
  rmSync(join(dir, 'data', 'index'), { recursive: true });
  cpSync(join(backup, 'index'), join(dir, 'data', 'index'), { recursive: true });
  cpSync(join(backup, 'recordings'), join(dir, 'data', 'recordings'), { recursive: true });
  d = await startDaemon(cfgFile);
  t.teardown(() => d.stop());
  t.match(await d.store.get(m.id), { status: 'destroyed' }, 'the restored backup did not bring it back');
  t.match(await d.store.get(n.id), { status: 'complete' }, 'the other call is untouched');
});

t.test('retention: recordings past their months are destroyed, then the month\'s epoch key', async (t) => {
  const { dir, cfgFile } = setup();
  const d = await startDaemon(cfgFile);
  t.teardown(() => d.stop());
  await sleep(300);
  const m = await record(d, 'ret-1', 'L1', '+358 40 999 0000', { id: 'r', name: 'Riikka Retentio' });
  const epoch = m.startedAt.slice(0, 7);
  t.ok(d.store.keys.epochs.has(epoch));
  let fakeNow = Date.now() + 5 * 31 * 86_400_000; // five months on: nothing is due
  const retention = new Retention(d.store, d.destroyer, d.store.keys.epochs, () => 6, pino({ level: 'silent' }), () => epochsOnDisk(d.cfg.dataDir), () => fakeNow);
  t.same(await retention.sweep(), { destroyed: 0, epochsDestroyed: [] });
  fakeNow = Date.parse(m.startedAt) + 7 * 31 * 86_400_000; // seven months on
  t.same(await retention.sweep(), { destroyed: 1, epochsDestroyed: [epoch] });
  t.match(await d.store.get(m.id), { status: 'destroyed', role: 'retention' });
  t.notOk(d.store.keys.epochs.has(epoch), 'the epoch key is gone');
  const store = JSON.parse(readFileSync(epochStorePath(d.cfg.dataDir), 'utf8'));
  t.same(Object.keys(store.epochs), [], 'and gone from the key store file');
  t.same(scan(join(dir, 'data'), [...forms('+358 40 999 0000'), 'Riikka Retentio']), []);
});

t.test('master key: refuses to start without it, naming it; a rotation re-seals epochs and old recordings stay readable', async (t) => {
  const { dir, cfgFile } = setup();
  const credDir = join(dir, 'creds');
  mkdirSync(credDir);
  const keyA = 'a'.repeat(64);
  const keyB = 'b'.repeat(64);
  const credCfg = join(dir, 'cred.yaml');
  writeFileSync(credCfg, readFileSync(cfgFile, 'utf8').replace(/keys:[\s\S]*?createMasterFile: true\n/, 'keys:\n  masterCredential: callrec-master\n'));
  delete process.env.CREDENTIALS_DIRECTORY;
  await t.rejects(startDaemon(credCfg), /CREDENTIALS_DIRECTORY is not set/);
  process.env.CREDENTIALS_DIRECTORY = credDir;
  t.teardown(() => void delete process.env.CREDENTIALS_DIRECTORY);
  await t.rejects(startDaemon(credCfg), /credential callrec-master is not in/);
  writeFileSync(join(credDir, 'callrec-master'), keyA);
  let d = await startDaemon(credCfg);
  await sleep(300);
  const m = await record(d, 'rot-1', 'L1', '0401112233', { id: 'k', name: 'K' });
  await d.stop();

  // The new key beside the old one, as a systemd drop-in loading both would.
  writeFileSync(join(credDir, 'callrec-master'), keyB);
  writeFileSync(join(credDir, 'callrec-master.old'), keyA);
  d = await startDaemon(credCfg);
  t.same(d.store.keys.epochs.staleEpochs(), [m.startedAt.slice(0, 7)], 'the epoch is still under the old key');
  // A rotation cut off by a crash leaves the old store whole and a torn temporary file beside it.
  writeFileSync(`${epochStorePath(d.cfg.dataDir)}.tmp`, '{"version":1,"epo');
  const r = await cli(['--socket', join(dir, 'callrec.sock'), 'keys', 'rotate', '--json']);
  t.notOk(existsSync(`${epochStorePath(d.cfg.dataDir)}.tmp`), 'the torn temporary file is gone');
  t.match(JSON.parse(r.stdout), { rotated: 1 });
  const again = await cli(['--socket', join(dir, 'callrec.sock'), 'keys', 'rotate', '--json']);
  t.match(JSON.parse(again.stdout), { rotated: 0 }, 'a second run (a resumed one) has nothing left to do');
  await d.stop();

  rmSync(join(credDir, 'callrec-master.old'));
  d = await startDaemon(credCfg);
  t.teardown(() => d.stop());
  t.ok((await d.service.export(testActor(), m.id, 'opus')).length > 100, 'a recording from before the rotation plays with the new key alone');
  await d.stop();
  writeFileSync(join(credDir, 'callrec-master'), 'c'.repeat(64));
  await t.rejects(startDaemon(credCfg), /sealed under master key [0-9a-f]{16}, which is not loaded/, 'a wrong master key: refuses to start');
});

t.test('db rebuild --offline restores the index from the sealed sidecars', async (t) => {
  const { dir, cfgFile } = setup();
  let d = await startDaemon(cfgFile);
  await sleep(300);
  const m1 = await record(d, 'rb-1', 'L1', '+358 40 555 6666', { id: 'p', name: 'P' });
  const m2 = await record(d, 'rb-2', 'L2', '+358 40 555 7777', { id: 'q', name: 'Q' });
  await d.service.destroy(testActor(), m2.id, 'objection');
  await d.stop();
  rmSync(join(dir, 'data', 'index'), { recursive: true });
  mkdirSync(join(dir, 'data', 'index'));
  writeFileSync(join(dir, 'data', 'index', 'CURRENT'), 'garbage');
  const r = await cli(['db', 'rebuild', '--offline', '--config', cfgFile, '--json']);
  t.match(JSON.parse(r.stdout), { restored: 1, failed: [] });
  d = await startDaemon(cfgFile);
  t.teardown(() => d.stop());
  t.same(await d.store.get(m1.id), m1, 'the record is back, byte for byte in meaning');
  t.same((await d.service.search(testActor(), { caller: '040 555 6666' })).items.map((x) => x.id), [m1.id], 'and found by number again');
  t.match(await d.store.get(m2.id), { status: 'destroyed', reason: 'objection' }, 'the destroyed one stays a tombstone');
  t.same(readdirSync(join(dir, 'data')).filter((f) => f.startsWith('index.old')), [], 'the old index (with copies of what was destroyed) is gone after a whole rebuild');
  t.equal(statSync(join(dir, 'data', 'index')).mode & 0o777, 0o750, 'the rebuilt index is 0750');
});

t.test('a lost index or key store is refused, never papered over; a rebuild will not run under a live daemon', async (t) => {
  const { dir, cfgFile } = setup();
  let d = await startDaemon(cfgFile);
  await sleep(300);
  await record(d, 'lost-1', 'L1', '0409998877', { id: 'l', name: 'L' });
  const busy = await cli(['db', 'rebuild', '--offline', '--config', cfgFile]).catch((e: { code: number; stderr: string }) => e);
  t.equal((busy as { code: number }).code, 1, 'rebuild under a live daemon: refused');
  t.match((busy as { stderr: string }).stderr, /locked: stop callrecd before rebuilding/);
  await d.stop();
  rmSync(join(dir, 'data', 'index'), { recursive: true });
  await t.rejects(startDaemon(cfgFile), /the index .* is empty but recordings are on disk: stop, run `callrec db rebuild/);
  await cli(['db', 'rebuild', '--offline', '--config', cfgFile]);
  const keyStore = join(dir, 'data', 'keys', 'epochs.json');
  const saved = readFileSync(keyStore);
  rmSync(keyStore);
  await t.rejects(startDaemon(cfgFile), /are on disk but .*epochs\.json has no key for them: restore the key store/);
  writeFileSync(keyStore, saved);
  d = await startDaemon(cfgFile);
  t.teardown(() => d.stop());
  t.equal((await d.service.search(testActor(), {})).items.length, 1, 'all back');
});

t.test('a torn last line in the destruction log does not swallow the next destruction', async (t) => {
  const { dir, cfgFile } = setup();
  let d = await startDaemon(cfgFile);
  await sleep(300);
  const m = await record(d, 'torn-1', 'L1', '0401231231', { id: 't', name: 'T' });
  const backup = join(dir, 'backup');
  cpSync(join(dir, 'data', 'recordings'), backup, { recursive: true });
  writeFileSync(join(dir, 'data', 'destroyed.log'), '{"id":"01M8ZZZZZZZZZZZZZZZZZZZZZZ","startedAt":"2026-12-03T17:30:33.8');
  await d.service.destroy(testActor(), m.id, 'objection');
  await d.stop();
  cpSync(backup, join(dir, 'data', 'recordings'), { recursive: true });
  d = await startDaemon(cfgFile);
  t.teardown(() => d.stop());
  t.match(await d.store.get(m.id), { status: 'destroyed' });
  t.notOk(existsSync(audioPath(d.cfg.dataDir, m.id, m.startedAt)), 'restored files destroyed again');
});

t.test('the daemon refuses a data directory that is not on an encrypted disk, saying how to fix it', async (t) => {
  const { cfgFile } = setup({ storage: { requireEncryptedDisk: true } });
  // This machine's disks are not dm-crypt (the detection itself is tested against fixture trees).
  await t.rejects(startDaemon(cfgFile), /is not on an encrypted disk: .*setup-encrypted-volume\.sh/);
});
