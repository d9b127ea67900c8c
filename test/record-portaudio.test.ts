import t from 'tap';
import { readFileSync } from 'node:fs';
import { decodeOggOpus } from '../daemon/store/ogg/decodeOggOpus.js';
import type { RecordingMeta } from '../daemon/store/RecordingMeta.js';
import { bestCorrelation, readWav } from './helpers/audio.js';
import { startPulseCard } from './helpers/pulseCard.js';
import { bundledSpeech } from './helpers/speech.js';
import { signal, sleep, startTestDaemon, waitFor, testActor } from './helpers/testDaemon.js';

// Three different real speakers, each played into its own line of a real PortAudio device (PulseAudio
// null sink read through ALSA's pulse plugin): the daemon records through naudiodon, not the virtual card.
const files = ['en-allison-demo-congrats.wav', 'it-carlo-priv-callee-options.wav', 'codec2-david4.wav'].map(bundledSpeech);

const card = await startPulseCard(8, 8000);
t.teardown(() => card.stop());
const td = await startTestDaemon({
  cards: [{ id: 'pa0', backend: 'portaudio', device: card.device, channels: 8, sampleRate: 8000, framesPerBuffer: 400, maxQueue: 60, readMs: 40 }],
  lines: [
    { id: 'L1', card: 'pa0', channels: [0] },
    { id: 'L4', card: 'pa0', channels: [3] },
    { id: 'L6', card: 'pa0', channels: [5] },
  ],
});
t.teardown(() => td.stop());

t.test('three overlapping calls signalled over HTTP, recorded through PortAudio, each hold their own line', async (t) => {
  await waitFor(async () => (await td.daemon.status()).cards[0]!.framesCaptured > 8000, 10000);
  const lines = [
    { line: 'L1', ch: 0, caller: '+358 40 555 0100' },
    { line: 'L4', ch: 3, caller: '050 765 4321' },
    { line: 'L6', ch: 5, caller: '09 1234567' },
  ];
  lines.forEach((l, i) => card.play(l.ch, files[i]!));
  await sleep(1500);
  const recs: Array<{ start: Record<string, unknown>; end?: Record<string, unknown>; id: string }> = [];
  for (const [i, l] of lines.entries()) {
    const start = signal('start', `pa-call-${i}`, { line: l.line, caller: l.caller, serviceNumber: '029 497 002' });
    const r = await td.post(start);
    t.equal(r.status, 202);
    recs.push({ start, id: r.json.recordingId });
    await td.post(signal('answer', `pa-call-${i}`, { agent: { id: `agent${i}`, name: `Adviser ${i}` } }));
    await sleep(600);
  }
  await sleep(2500);
  for (const [i, rec] of recs.entries()) {
    rec.end = signal('end', `pa-call-${i}`);
    await td.post(rec.end);
    await sleep(300);
  }
  const sources = files.map((f) => readWav(f).samples);
  for (const [i, rec] of recs.entries()) {
    const m = await waitFor(async () => {
      const x = (await td.daemon.store.get(rec.id)) as RecordingMeta;
      return x.status !== 'recording' && x.audioSha256 ? x : null;
    });
    const l = lines[i]!;
    t.equal(m.status, 'complete');
    t.equal(m.caller, l.caller, `${l.line}: caller verbatim`);
    t.equal(m.agentName, `Adviser ${i}`);
    t.same(m.gaps, [], `${l.line}: no gaps`);
    const signalled = Date.parse(rec.end!.at as string) - Date.parse(rec.start.at as string);
    t.ok(Math.abs(m.durationMs! - signalled) <= 40, `${l.line}: duration ${m.durationMs} ms = end - start (${signalled} ms)`);
    const pcm = decodeOggOpus(await td.daemon.service.export(testActor(), m.id, 'opus'));
    sources.forEach((src, j) => {
      const c = bestCorrelation(pcm.samples, src, src.length, Math.floor(pcm.samples.length * 0.9));
      if (j === i) t.ok(c.r >= 0.8, `${l.line}: correlates with the speech played on its line (r = ${c.r.toFixed(3)})`);
      else t.ok(c.r < 0.3, `${l.line}: not with line ${lines[j]!.line}'s speech (r = ${c.r.toFixed(3)})`);
    });
  }
});
