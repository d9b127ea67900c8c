import t from 'tap';
import { execFile } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { promisify } from 'node:util';
import { stringify } from 'yaml';
import { readWav } from './helpers/audio.js';
import { opusinfo } from './helpers/oggTools.js';
import { signal, sleep, startTestDaemon, waitFor } from './helpers/testDaemon.js';
import { cliLogin, managerToken } from './helpers/people.js';
import { compileSchemaFile } from '../daemon/config/jsonSchema.js';
import type { RecordingMeta } from '../daemon/store/RecordingMeta.js';

const run = promisify(execFile);
const CLI = resolve('dist/daemon/bin/callrec.js');
const td = await startTestDaemon();
t.teardown(() => td.stop());
const socket = td.cfg.control.socket;
await managerToken(socket);
const session = await cliLogin(socket, 'test.manager');

async function callrec(args: string[], env: Record<string, string> = {}): Promise<{ code: number; stdout: string; stderr: string }> {
  try {
    const r = await run(process.execPath, [CLI, ...args], { env: { ...process.env, CALLREC_SOCKET: '', ...session, ...env } });
    return { code: 0, stdout: r.stdout, stderr: r.stderr };
  } catch (err) {
    const e = err as { code: number; stdout: string; stderr: string };
    return { code: e.code, stdout: e.stdout, stderr: e.stderr };
  }
}

async function record(callId: string, line: string, caller: string, agent: { id: string; name: string } | null, ms: number): Promise<RecordingMeta> {
  const r = await td.post(signal('start', callId, { line, caller, serviceNumber: '029 497 002' }));
  if (agent) await td.post(signal('answer', callId, { agent }));
  await sleep(ms);
  await td.post(signal('end', callId));
  return waitFor(async () => {
    const m = (await td.daemon.store.get(r.json.recordingId)) as RecordingMeta;
    return m.audioSha256 ? m : null;
  });
}

const tBefore = new Date().toISOString();
const a = await record('cli-a', 'L1', '+358 40 555 0100', { id: 'aino.virtanen', name: 'Aino Virtanen' }, 1200);
const tMiddle = new Date().toISOString();
const b = await record('cli-b', 'L2', '*97', { id: 'timo.laine', name: 'Timo Laine' }, 600);
const c = await record('cli-c', 'L3', '', null, 600);

t.test('calls list --json: every recording, sorted by start, in the documented shape', async (t) => {
  const r = await callrec(['--socket', socket, 'calls', 'list', '--json']);
  t.equal(r.code, 0, r.stderr);
  const list = JSON.parse(r.stdout) as RecordingMeta[];
  t.same(list.map((m) => m.id), [a.id, b.id, c.id]);
  const validate = compileSchemaFile(resolve('docs/schemas/recording.schema.json'));
  for (const m of list) t.ok(validate(m), `${m.id} matches docs/schemas/recording.schema.json ${JSON.stringify(validate.errors)}`);
  t.same(list.map((m) => m.callerClass), ['number', 'unparsable', 'anonymous']);
  t.equal(list[0]!.callerNormalized, '+358405550100');
  t.same(list[0]!.codec, { name: 'opus', sampleRate: 8000, channels: 1, bitrate: 16000, complexity: 5 });
  t.equal(list[2]!.codec.channels, 2);
});

t.test('filters: time range (--from inclusive, --to exclusive), caller in any written form, adviser', async (t) => {
  const ids = async (...args: string[]): Promise<string[]> => {
    const r = await callrec(['--socket', socket, 'calls', 'list', '--json', ...args]);
    t.equal(r.code, 0, r.stderr);
    return (JSON.parse(r.stdout) as RecordingMeta[]).map((m) => m.id);
  };
  t.same(await ids('--from', tMiddle), [b.id, c.id]);
  t.same(await ids('--to', tMiddle), [a.id]);
  t.same(await ids('--from', a.startedAt, '--to', b.startedAt), [a.id], '--from is inclusive, --to exclusive');
  t.same(await ids('--from', tBefore.slice(0, 10)), [a.id, b.id, c.id], 'a date is midnight UTC');
  for (const form of ['+358 40 555 0100', '+358405550100', '040 555 0100', '0405550100', '040-555 0100']) t.same(await ids('--caller', form), [a.id], `--caller ${form}`);
  t.same(await ids('--caller', '*97'), [b.id], 'an unparsable caller matches verbatim');
  t.same(await ids('--agent', 'timo.laine'), [b.id]);
  t.same(await ids('--caller', '+358 40 555 0199'), []);
  t.same(await ids('--newest-first'), [c.id, b.id, a.id], '--newest-first: the other way');
});

t.test('a far-future --to still sorts after every start', async (t) => {
  const r = await callrec(['--socket', socket, 'calls', 'list', '--json', '--to', '9999-12-31T23:30:00-01:00']);
  t.equal(r.code, 0);
  t.equal(JSON.parse(r.stdout).length, 3);
});

t.test('junk on the control socket gets an error answer and the daemon lives on', async (t) => {
  const { connect } = await import('node:net');
  for (const line of ['null', '[]', '42', '"x"', '{"id":1}', '{"id":1,"method":"status","params":null}', '{"id":1,"method":"__proto__"}', '{"id":1,"method":"constructor"}']) {
    const answer = await new Promise<string>((res) => {
      const sock = connect(socket, () => sock.write(`${line}\n`));
      let buf = '';
      sock.on('data', (d) => {
        buf += d;
        if (buf.includes('\n')) sock.end();
      });
      sock.on('close', () => res(buf));
    });
    const first = JSON.parse(answer.split('\n')[0]!);
    t.equal(first.ok, false, `${line}: ${first.ok ? 'answered' : first.error.code}`);
    if (line.includes('"status"')) t.equal(first.error.code, 'unauthenticated', 'a well-formed request without a session: unauthenticated');
  }
  t.equal((await callrec(['--socket', socket, 'status'])).code, 0, 'still running');
});

t.test('calls show: the record; an unknown id exits 4; usage errors exit 2', async (t) => {
  const r = await callrec(['--socket', socket, 'calls', 'show', a.id, '--json']);
  t.equal(r.code, 0);
  t.same(JSON.parse(r.stdout), { ...a, callerMasked: false });
  const plain = await callrec(['--socket', socket, 'calls', 'show', a.id]);
  t.match(plain.stdout, /agentName\s+Aino Virtanen/);
  // People read local time (display.timeZone, default Europe/Helsinki: UTC+2, +3 in summer); JSON stays UTC.
  const m = /startedAt\s+(\d{4}-\d{2}-\d{2}) (\d{2}):(\d{2}):(\d{2}) (EEST|EET) \((.*)\)/.exec(plain.stdout);
  t.ok(m, plain.stdout);
  const utc = new Date(a.startedAt);
  const shift = m![5] === 'EEST' ? 3 : 2;
  const local = new Date(utc.getTime() + shift * 3600_000);
  t.equal(`${m![1]} ${m![2]}:${m![3]}:${m![4]}`, local.toISOString().slice(0, 19).replace('T', ' '), `shown as ${m![5]} (UTC+${shift})`);
  t.equal(m![6], a.startedAt);
  t.equal((await callrec(['--socket', socket, 'calls', 'show', '01ARZ3NDEKTSV4RRFFQ69G5FAV'])).code, 4);
  t.equal((await callrec(['--socket', socket, 'calls', 'show', '../../etc/passwd'])).code, 4);
  t.equal((await callrec(['--socket', socket, 'calls', 'show'])).code, 2);
  t.equal((await callrec(['--socket', socket, 'calls', 'frobnicate'])).code, 2);
  t.equal((await callrec(['--socket', socket, '--bogus'])).code, 2);
  t.equal((await callrec(['--socket', socket, 'calls', 'list', '--from', 'yesterday'])).code, 2);
  t.equal((await callrec(['--socket', socket, 'calls', 'list', '--from', '2026-02-30'])).code, 2, 'no 30 February');
  t.equal((await callrec(['--socket', socket, 'calls', 'list', '--from', '2026-12-03T10:00:00'])).code, 2, 'a time needs an offset');
  t.equal((await callrec(['--socket', socket, 'calls', 'list', '--from', '2026-12-03 10:00'])).code, 2);
  t.equal((await callrec(['--socket', socket, 'calls', 'list', '--caller', '1'.repeat(70000)])).code, 2, 'an oversized request is refused, not dropped');
  t.equal((await callrec(['--version'])).code, 0);
  t.equal((await callrec(['--socket', join(td.dir, 'nothing.sock'), 'status'])).code, 1, 'no daemon: failure');
});

t.test('the socket is found by --socket, then CALLREC_SOCKET, then --config', async (t) => {
  t.equal((await callrec(['status', '--json'], { CALLREC_SOCKET: socket })).code, 0);
  const dir = mkdtempSync(join(tmpdir(), 'callrec-cfg-'));
  const cfgFile = join(dir, 'c.yaml');
  writeFileSync(cfgFile, stringify({ cards: [{ id: 'v', backend: 'virtual', channels: 1 }], lines: [{ id: 'L', card: 'v', channels: [0] }], signals: { token: 'x'.repeat(20) }, control: { socket }, storage: { requireEncryptedDisk: false, reserveMb: 8, floorMb: 1 } }));
  const r = await callrec(['--config', cfgFile, 'status', '--json']);
  t.equal(r.code, 0, r.stderr);
  const st = JSON.parse(r.stdout);
  const validate = compileSchemaFile(resolve('docs/schemas/status.schema.json'));
  t.ok(validate(st), `status --json matches docs/schemas/status.schema.json ${JSON.stringify(validate.errors)}`);
  t.equal(st.lines, 3);
  t.equal(st.recordingsStored, 3);
  t.equal(st.cards[0].backend, 'virtual');
});

t.test('calls export: Ogg Opus that opusinfo accepts, and WAV at the line rate', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'callrec-export-'));
  const opus = join(dir, 'a.opus');
  const r = await callrec(['--socket', socket, 'calls', 'export', a.id, '--format', 'opus', '-o', opus]);
  t.equal(r.code, 0, r.stderr);
  const info = opusinfo(opus);
  t.equal(info.status, 0);
  t.same(info.problems, [], 'opusinfo: no warnings');
  t.ok(Math.abs(info.playbackS! * 1000 - a.durationMs!) <= 2, `opusinfo plays ${info.playbackS} s`);
  const wavFile = join(dir, 'c.wav');
  t.equal((await callrec(['--socket', socket, 'calls', 'export', c.id, '--format', 'wav', '-o', wavFile])).code, 0);
  const wav = readWav(wavFile);
  t.equal(wav.sampleRate, 8000);
  t.equal(wav.channels, 2);
  t.ok(Math.abs(wav.samples.length / 2 - (c.durationMs! * 8)) <= 4, 'WAV length = duration');
  t.equal((await callrec(['--socket', socket, 'calls', 'export', a.id, '--format', 'mp3', '-o', wavFile])).code, 2);
  t.equal((await callrec(['--socket', socket, 'calls', 'export', '01ARZ3NDEKTSV4RRFFQ69G5FAV', '--format', 'opus', '-o', join(dir, 'x.opus')])).code, 4);
  t.notOk(existsSync(join(dir, 'x.opus')), 'a failed export leaves no file');
  const intoDir = await callrec(['--socket', socket, 'calls', 'export', a.id, '--format', 'opus', '-o', dir]);
  t.equal(intoDir.code, 1, 'a directory as -o: failure');
  t.same(readdirSync(dir).filter((f) => f.includes('.part')), [], 'and no partial copy left behind');
  t.ok(readFileSync(opus).length === a.audioBytes, 'exported bytes = audioBytes');
});

t.test('a long list survives a pipe whole', async (t) => {
  // Filler records straight into the store: a list far over a pipe's 64 KiB buffer.
  const ids: string[] = [];
  for (let i = 0; i < 150; i++) {
    const id = `01M8Z${String(i).padStart(21, '0')}`;
    ids.push(id);
    await td.daemon.store.create({ ...a, id, callId: `filler-${i}`, startedAt: new Date(Date.parse(a.startedAt) - 86_400_000 + i).toISOString() });
  }
  const r = await callrec(['--socket', socket, 'calls', 'list', '--json']);
  t.ok(r.stdout.length > 100_000, `${r.stdout.length} bytes`);
  t.equal(JSON.parse(r.stdout).length, 153);
  const plain = await callrec(['--socket', socket, 'calls', 'list']);
  t.equal(plain.stdout.trim().split('\n').length, 154, 'header + every row');
});

t.test('calls training: a manager marks a call as training material and takes the mark off', async (t) => {
  const on = await callrec(['--socket', socket, 'calls', 'training', a.id, '--json']);
  t.equal(on.code, 0, on.stderr);
  t.same(JSON.parse(on.stdout).flags, [...a.flags, 'training']);
  t.ok(((await td.daemon.store.get(a.id)) as RecordingMeta).flags.includes('training'), 'stored');
  const off = await callrec(['--socket', socket, 'calls', 'training', a.id, '--off', '--json']);
  t.same(JSON.parse(off.stdout).flags, a.flags);
  t.same(((await td.daemon.store.get(a.id)) as RecordingMeta).flags, a.flags);
  t.equal((await callrec(['--socket', socket, 'calls', 'training', '01ARZ3NDEKTSV4RRFFQ69G5FAV'])).code, 4);
});
