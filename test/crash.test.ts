import t from 'tap';
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { createInterface } from 'node:readline';
import { stringify } from 'yaml';
import { callDaemon } from '../daemon/cli/ControlClient.js';
import type { RecordingMeta } from '../daemon/store/RecordingMeta.js';
import { signal, sleep, waitFor } from './helpers/testDaemon.js';
import { opusinfo } from './helpers/oggTools.js';
import { managerToken } from './helpers/people.js';

const dir = mkdtempSync(join(tmpdir(), 'callrec-crash-'));
const socket = join(dir, 'callrec.sock');
const token = 'crash-test-token-0123456789';
const cfgFile = join(dir, 'config.yaml');
writeFileSync(cfgFile, stringify({
  dataDir: join(dir, 'data'),
  cards: [{ id: 'v0', backend: 'virtual', channels: 2, readMs: 20 }],
  lines: [{ id: 'L1', card: 'v0', channels: [0] }],
  signals: { port: 0, token },
  control: { socket },
  keys: { masterFile: join(dir, 'master.key'), createMasterFile: true },
  storage: { requireEncryptedDisk: false, reserveMb: 8, floorMb: 1 },
  admin: { port: 0 },
}));

/** Starts callrecd as its own process; resolves with the PBX URL once it logs that it is ready. */
async function startDaemon(): Promise<{ child: ChildProcess; url: string; logs: any[] }> {
  const child = spawn(process.execPath, [resolve('dist/daemon/bin/callrecd.js'), '--config', cfgFile], { stdio: ['ignore', 'pipe', 'pipe'] });
  const logs: any[] = [];
  const url = await new Promise<string>((resolveUrl, reject) => {
    child.once('exit', (code) => reject(new Error(`callrecd exited ${code}`)));
    createInterface({ input: child.stdout! }).on('line', (line) => {
      const entry = JSON.parse(line); // every stdout line is JSON: native prints go to stderr
      logs.push(entry);
      if (entry.msg === 'callrecd ready') resolveUrl(`http://127.0.0.1:${entry.pbx.port}/pbx/v1/events`);
    });
  });
  return { child, url, logs };
}

const post = (url: string, body: unknown): Promise<any> =>
  fetch(url, { method: 'POST', headers: { authorization: `Bearer ${token}` }, body: JSON.stringify(body) }).then((r) => r.json());

t.test('after SIGKILL mid-call, a restart repairs the recording, losing at most a second', async (t) => {
  const first = await startDaemon();
  const startAt = new Date();
  const { recordingId } = await post(first.url, signal('start', 'crash-1', { line: 'L1', caller: '+358 40 555 0100', serviceNumber: '029 497 002' }, startAt));
  t.match(recordingId, /^[0-9A-Z]{26}$/);
  await sleep(3000);
  const killedAt = Date.now();
  first.child.kill('SIGKILL');
  await new Promise((r) => first.child.once('exit', r));

  writeFileSync(join(dir, 'data', 'keys', 'epochs.json.tmp'), '{"torn');
  const second = await startDaemon();
  t.notOk(existsSync(join(dir, 'data', 'keys', 'epochs.json.tmp')), 'a temporary file left by the crash is swept');
  t.ok(second.logs.some((l) => l.msg === 'temporary files left by a crash removed' && l.swept === 1));
  t.teardown(() => {
    second.child.kill('SIGTERM');
  });
  t.ok(second.logs.some((l) => l.msg === 'recording repaired after an unclean stop' && l.recordingId === recordingId), 'the restart logs the repair');
  const m = (await callDaemon(socket, 'calls.show', { id: recordingId }, await managerToken(socket))) as RecordingMeta;
  t.equal(m.status, 'interrupted');
  t.ok(m.flags.includes('repaired'));
  const lived = killedAt - startAt.getTime();
  t.ok(m.durationMs! >= lived - 1000 && m.durationMs! <= lived, `kept ${m.durationMs} ms of ${lived} ms (a crash loses at most 1 s)`);
  const out = join(dir, 'repaired.opus');
  const { data } = (await callDaemon(socket, 'calls.export', { id: recordingId, format: 'opus' }, await managerToken(socket))) as { data: string };
  writeFileSync(out, Buffer.from(data, 'base64'));
  const info = opusinfo(out);
  t.equal(info.status, 0);
  t.same(info.problems, [], 'opusinfo accepts the repaired file');

  // SIGTERM is the clean path: open recordings are finalised and the daemon exits 0.
  const s2 = await post(second.url, signal('start', 'crash-2', { line: 'L1', caller: '', serviceNumber: '029 497 002' }));
  await sleep(800);
  second.child.kill('SIGTERM');
  const code = await new Promise((r) => second.child.once('exit', r));
  t.equal(code, 0, 'SIGTERM: exit 0');
  const third = await startDaemon();
  const m2 = (await callDaemon(socket, 'calls.show', { id: s2.recordingId }, await managerToken(socket))) as RecordingMeta;
  t.equal(m2.status, 'interrupted', 'closed cleanly at shutdown, not left open');
  t.notOk(third.logs.some((l) => l.msg === 'recording repaired after an unclean stop'), 'nothing to repair after a clean stop');
  third.child.kill('SIGTERM');
  await waitFor(() => third.child.exitCode !== null);
  const allLogs = JSON.stringify([...first.logs, ...second.logs, ...third.logs]);
  for (const personal of ['555 0100', '5550100', '555-0100']) t.notOk(allLogs.includes(personal), `no log line holds the caller number (${personal})`);
});

t.test('a crash that leaves a record without its folder still restarts, with a valid empty stream', async (t) => {
  const first = await startDaemon();
  const { recordingId } = await post(first.url, signal('start', 'crash-3', { line: 'L1', caller: '', serviceNumber: '029 497 002' }));
  await sleep(1000);
  first.child.kill('SIGKILL');
  await new Promise((r) => first.child.once('exit', r));
  // As if the crash came before the worker made the day's folder.
  rmSync(join(dir, 'data', 'recordings'), { recursive: true, force: true });
  const second = await startDaemon();
  const m = (await callDaemon(socket, 'calls.show', { id: recordingId }, await managerToken(socket))) as RecordingMeta;
  t.equal(m.status, 'interrupted');
  t.equal(m.durationMs, 14, 'one lost-frame packet: (960 - 312) / 48 = 13.5 ms, rounded');
  const out = join(dir, 'empty.opus');
  const { data } = (await callDaemon(socket, 'calls.export', { id: recordingId, format: 'opus' }, await managerToken(socket))) as { data: string };
  writeFileSync(out, Buffer.from(data, 'base64'));
  t.same(opusinfo(out).problems, [], 'opusinfo accepts it');
  second.child.kill('SIGTERM');
  await new Promise((r) => second.child.once('exit', r));
});
