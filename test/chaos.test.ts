import t from 'tap';
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { createInterface } from 'node:readline';
import { stringify } from 'yaml';
import pino from 'pino';
import { loadConfig } from '../daemon/config/loadConfig.js';
import { Daemon } from '../daemon/Daemon.js';
import { decodeOggOpus } from '../daemon/store/ogg/decodeOggOpus.js';
import type { RecordingMeta } from '../daemon/store/RecordingMeta.js';
import { signal, sleep, testActor } from './helpers/testDaemon.js';

// Chaos: 50 lines kept busy with calls, the daemon SIGKILLed at 20 random moments and restarted each
// time. Afterwards every recording opens, decodes and has the right status, and each one cut by a kill
// holds its audio up to at most about 1 s before the kill.
t.setTimeout(400_000);
const LINES = 50;
const KILLS = 20;
const token = 'chaos-token-0123456789abcdef';
const dir = mkdtempSync(join(tmpdir(), 'callrec-chaos-'));
const cfgFile = join(dir, 'config.yaml');
writeFileSync(cfgFile, stringify({
  dataDir: join(dir, 'data'),
  cards: [{ id: 'v0', backend: 'virtual', channels: 64, readMs: 40 }],
  lines: Array.from({ length: LINES }, (_, i) => ({ id: `L${i}`, card: 'v0', channels: [i] })),
  encode: { workers: 2 },
  signals: { port: 0, token },
  control: { socket: join(dir, 's.sock') },
  keys: { masterFile: join(dir, 'k'), createMasterFile: true },
  storage: { requireEncryptedDisk: false, reserveMb: 8, floorMb: 1 },
  admin: { port: 0 },
  log: { level: 'info' },
}));

interface Call {
  callId: string;
  line: string;
  id: string;
  startAt: number;
  endAt?: number;
  killedAt?: number;
}

async function start(): Promise<{ child: ChildProcess; url: string }> {
  const child = spawn(process.execPath, [resolve('dist/daemon/bin/callrecd.js'), '--config', cfgFile], { stdio: ['ignore', 'pipe', 'ignore'] });
  const url = await new Promise<string>((res, rej) => {
    child.once('exit', (c) => rej(new Error(`callrecd exited ${c}`)));
    createInterface({ input: child.stdout! }).on('line', (l) => {
      const e = JSON.parse(l);
      if (e.msg === 'callrecd ready') res(`http://127.0.0.1:${e.pbx.port}/pbx/v1/events`);
    });
  });
  return { child, url };
}

const rand = (a: number, b: number): number => a + Math.random() * (b - a);

t.test(`${LINES} busy lines, SIGKILL at ${KILLS} random moments`, { timeout: 600_000 }, async (t) => {
  const calls: Call[] = [];
  const open = new Map<string, Call>();
  let seq = 0;
  for (let k = 0; k < KILLS; k++) {
    const { child, url } = await start();
    const post = (b: Record<string, unknown>): Promise<any> => fetch(url, { method: 'POST', headers: { authorization: `Bearer ${token}` }, body: JSON.stringify(b) }).then((r) => r.json());
    // Calls open when the daemon died are gone for the PBX too: fresh calls on every line.
    open.clear();
    const until = performance.now() + rand(600, 2500);
    while (performance.now() < until) {
      for (let i = 0; i < LINES; i++) {
        const line = `L${i}`;
        const c = open.get(line);
        if (c && Math.random() < 0.15) {
          const at = new Date();
          await post(signal('end', c.callId, {}, at));
          c.endAt = at.getTime();
          open.delete(line);
        } else if (!c) {
          const at = new Date();
          const callId = `chaos-${++seq}`;
          const r = await post(signal('start', callId, { line, caller: `+358 40 ${String(seq).padStart(7, '0')}`, serviceNumber: '029 497 002' }, at));
          const call: Call = { callId, line, id: r.recordingId, startAt: at.getTime() };
          calls.push(call);
          open.set(line, call);
        }
      }
      await sleep(rand(50, 300));
    }
    const killedAt = Date.now();
    child.kill('SIGKILL');
    await new Promise((r) => child.once('exit', r));
    for (const c of open.values()) c.killedAt = killedAt;
  }
  t.ok(calls.length >= KILLS * LINES, `${calls.length} calls placed`);

  // Last start: repairs the last kill's recordings; then every recording is checked in-process.
  const d = new Daemon(loadConfig(cfgFile), pino({ level: 'silent' }));
  await d.start();
  t.teardown(() => d.stop());
  const problems: string[] = [];
  let cutChecked = 0;
  for (const c of calls) {
    const m = (await d.store.get(c.id)) as RecordingMeta | null;
    if (!m) {
      problems.push(`${c.callId}: no record`);
      continue;
    }
    const v = await d.service.verify(testActor(), c.id);
    if (!v.ok) problems.push(`${c.callId}: ${v.problem}`);
    let frames = 0;
    try {
      const pcm = decodeOggOpus(await d.service.export(testActor(), c.id, 'opus'));
      frames = pcm.samples.length;
    } catch (err) {
      problems.push(`${c.callId}: does not decode: ${(err as Error).message}`);
    }
    if (m.status === 'recording') problems.push(`${c.callId}: still marked recording`);
    if (c.killedAt !== undefined) {
      // Cut by a kill: repaired, and holds audio up to about a second before the kill.
      if (m.status !== 'interrupted') problems.push(`${c.callId}: status ${m.status} after a kill`);
      const lived = c.killedAt - Date.parse(m.startedAt);
      if (lived > 1500 && m.durationMs! < lived - 1000) problems.push(`${c.callId}: kept ${m.durationMs} ms of ${lived} ms`);
      cutChecked++;
    } else if (c.endAt !== undefined && m.status === 'complete') {
      const want = c.endAt - c.startAt;
      if (Math.abs(m.durationMs! - want) > 40) problems.push(`${c.callId}: ${m.durationMs} ms for a ${want} ms call`);
    } else if (m.status !== 'interrupted' && m.status !== 'complete') {
      problems.push(`${c.callId}: unexpected status ${m.status}`);
    }
    if (frames === 0 && (m.durationMs ?? 0) > 100) problems.push(`${c.callId}: no audio decoded for ${m.durationMs} ms`);
  }
  t.same(problems.slice(0, 20), [], `${calls.length} recordings all open, decode and have the right status (${problems.length} problems)`);
  t.ok(cutChecked >= KILLS, `${cutChecked} recordings cut by a kill, each checked`);
});
