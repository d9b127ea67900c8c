import t from 'tap';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { compileSchemaFile } from '../daemon/config/jsonSchema.js';
import { wavBytes } from '../daemon/capture/wav.js';
import type { RecordingMeta } from '../daemon/store/RecordingMeta.js';
import { writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { signal, sleep, startFields, startTestDaemon, waitFor } from './helpers/testDaemon.js';

const parsePrometheusTextFormat = createRequire(import.meta.url)('parse-prometheus-text-format') as (text: string) => unknown;
const dir = mkdtempSync(join(tmpdir(), 'callrec-health-'));
const silence = join(dir, 'silence.wav');
writeFileSync(silence, wavBytes({ sampleRate: 8000, channels: 1, samples: new Int16Array(8000 * 3) }));
const speech = resolve('daemon/capture/speech/en-allison-demo-congrats.wav');

const td = await startTestDaemon({
  cards: [{ id: 'v0', backend: 'virtual', channels: 4, sampleRate: 8000, readMs: 20, speech: [speech, silence, speech, silence] }],
  lines: [
    { id: 'L1', card: 'v0', channels: [0] },
    { id: 'L2', card: 'v0', channels: [1] },
    { id: 'L3', card: 'v0', channels: [2, 3] },
  ],
  admin: { port: 0, metricsToken: 'scrape-token-0123456789' },
  // 100 %: the data volume is always "low", so the disk alarm can be seen without filling a disk.
  alarms: { diskWarnPercent: 100, diskCriticalPercent: 0 },
});
t.teardown(() => td.stop());
const admin = `http://127.0.0.1:${td.daemon.adminAddress.port}`;

t.test('GET /health: the health model and its alarms, nothing personal, no session', async (t) => {
  const r = await fetch(`${admin}/health`);
  t.equal(r.status, 200, 'warnings only: 200');
  const h = (await r.json()) as any;
  t.equal(h.status, 'degraded');
  t.type(h.disk.freeBytes, 'number');
  t.ok(h.disk.totalInodes >= h.disk.freeInodes);
  t.type(h.clock.synchronized, 'boolean');
  t.ok(h.temperatures.mainC === null || typeof h.temperatures.mainC === 'number', 'temperatures are null-safe');
  t.same(h.cards.map((c: any) => c.id), ['v0']);
  t.ok(h.alarms.some((a: any) => a.code === 'DISK_LOW'), 'DISK_LOW raised');
  t.equal(h.alarms.some((a: any) => a.code === 'CLOCK_UNSYNCED'), !h.clock.synchronized, 'CLOCK_UNSYNCED exactly when the kernel says unsynchronised');
  t.equal(r.headers.get('x-powered-by'), null);
  t.match(r.headers.get('content-security-policy'), /default-src 'none'/);
  t.equal(r.headers.get('strict-transport-security'), null, 'no HSTS on plain HTTP');
  const st = await td.daemon.status();
  t.ok(compileSchemaFile(resolve('docs/schemas/status.schema.json'))(JSON.parse(JSON.stringify(st))), 'status (with alarms) matches its schema');
});

t.test('a critical alarm makes /health answer 503', async (t) => {
  const cfg = td.daemon.cfg;
  cfg.alarms.diskCriticalPercent = 100;
  t.teardown(() => void (cfg.alarms.diskCriticalPercent = 0));
  const r = await fetch(`${admin}/health`);
  t.equal(r.status, 503);
  t.match(await r.json(), { status: 'failing', alarms: [{ code: 'DISK_LOW', severity: 'critical' }] });
});

t.test('a call silent on one side raises "no audio" and flags the recording', async (t) => {
  await sleep(300);
  const mixed = await td.post(signal('start', 'h-silent', startFields('L2')));
  const split = await td.post(signal('start', 'h-split', startFields('L3')));
  const loud = await td.post(signal('start', 'h-loud', startFields('L1')));
  await sleep(5300);
  for (const id of ['h-silent', 'h-split', 'h-loud']) await td.post(signal('end', id));
  const done = async (id: string): Promise<RecordingMeta> => waitFor(async () => {
    const m = (await td.daemon.store.get(id)) as RecordingMeta;
    return m.storedSha256 ? m : null;
  });
  t.ok((await done(mixed.json.recordingId)).flags.includes('no_audio'), 'a silent mixed line: no_audio');
  const s = await done(split.json.recordingId);
  t.ok(s.flags.includes('no_adviser_audio') && !s.flags.includes('no_caller_audio'), 'a split line with a silent adviser side: no_adviser_audio only');
  t.notOk((await done(loud.json.recordingId)).flags.some((f) => f.startsWith('no_')), 'a line with speech: no flag');
  const h = (await (await fetch(`${admin}/health`)).json()) as any;
  t.ok(h.alarms.some((a: any) => a.code === 'AUDIO_SILENT' && a.subject === 'L2' && a.text === 'no audio on line L2 through a whole call'));
  t.ok(h.alarms.some((a: any) => a.code === 'AUDIO_SILENT' && a.subject === 'L3' && a.text === 'no adviser audio on line L3 through a whole call'));
  t.notOk(h.alarms.some((a: any) => a.subject === 'L1'));
});

t.test('GET /metrics: Prometheus text behind the scrape token, no personal data in it', async (t) => {
  await sleep(1100); // workers report their counts once a second
  t.equal((await fetch(`${admin}/metrics`)).status, 401);
  t.equal((await fetch(`${admin}/metrics`, { headers: { authorization: 'Bearer wrong-token-0123456789' } })).status, 401);
  await td.post(signal('start', 'h-m', { line: 'L1', caller: '+358 40 123 9876', serviceNumber: '029 497 002' }));
  await td.post({ bad: true });
  await td.post(signal('end', 'h-m'));
  const r = await fetch(`${admin}/metrics`, { headers: { authorization: 'Bearer scrape-token-0123456789' } });
  t.equal(r.status, 200);
  t.match(r.headers.get('content-type'), /text\/plain/);
  const text = await r.text();
  t.match(text, /callrec_signal_events_total\{type="start",outcome="accepted"\} \d+/);
  t.match(text, /callrec_signal_events_total\{type="unknown",outcome="missing_field"\} 1/);
  t.match(text, /callrec_frames_captured\{card="v0"\} [1-9]\d*/);
  t.match(text, /callrec_alarms\{code="DISK_LOW",severity="warning"\} 1/);
  t.match(text, /callrec_recordings_finished_total\{status="complete"\} [1-9]/);
  t.notMatch(text, /123 ?9876|358/, 'no number in any label');
  // And a Prometheus text-format parser reads all of it.
  const families = parsePrometheusTextFormat(text) as Array<{ name: string; type: string; metrics: Array<{ value?: string; labels?: Record<string, string> }> }>;
  const byName = new Map(families.map((f) => [f.name, f]));
  for (const [name, type] of [['callrec_active_recordings', 'GAUGE'], ['callrec_signal_events_total', 'COUNTER'], ['callrec_frames_captured', 'GAUGE'], ['callrec_alarms', 'GAUGE'], ['callrec_disk_free_bytes', 'GAUGE']] as const) {
    t.equal(byName.get(name)?.type, type, `${name} parses as a ${type}`);
  }
  t.ok(Number(byName.get('callrec_disk_free_bytes')!.metrics[0]!.value) > 0);
  t.equal(byName.get('callrec_encode_pump_seconds')?.type, 'HISTOGRAM', 'encode latency is a histogram');
  t.ok(Number((byName.get('callrec_encode_pump_seconds')!.metrics[0] as { count?: string }).count) > 0, 'with observations from the workers');
  t.equal(byName.get('callrec_encoder_lag_seconds')?.type, 'GAUGE');
  t.equal(byName.get('callrec_frames_dropped')?.type, 'GAUGE');
  t.equal(byName.get('callrec_ring_fill_ratio')?.type, 'GAUGE');
  // Three calls of 5.3 s and one short one were encoded: well over 3 x 5 x 8000 frames.
  t.ok(Number(byName.get('callrec_frames_encoded_total')!.metrics[0]!.value) > 3 * 5 * 8000, `frames encoded: ${byName.get('callrec_frames_encoded_total')!.metrics[0]!.value}`);
  t.match(byName.get('callrec_signal_events_total')!.metrics.find((m) => m.labels?.outcome === 'missing_field'), { labels: { type: 'unknown' }, value: '1' });
  t.equal((await fetch(`${admin}/other`)).status, 404);
});
