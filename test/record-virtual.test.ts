import t from 'tap';
import { readFileSync } from 'node:fs';
import { DEFAULT_SPEECH } from '../daemon/capture/defaultSpeech.js';
import { decodeOggOpus } from '../daemon/store/ogg/decodeOggOpus.js';
import type { RecordingMeta } from '../daemon/store/RecordingMeta.js';
import type { VirtualCard } from '../daemon/capture/VirtualCard.js';
import { bestCorrelation, readWav, rms } from './helpers/audio.js';
import { signal, sleep, startTestDaemon, waitFor, testActor } from './helpers/testDaemon.js';

/** Channel c of the virtual card plays DEFAULT_SPEECH[c] then 1.5 s of silence, looped, from frame 0. */
function track(c: number): Int16Array {
  const [file, pick] = DEFAULT_SPEECH[c]!.split('#') as [string, string | undefined];
  const wav = readWav(file);
  const ch = Number(pick ?? 0);
  const out = new Int16Array(wav.samples.length / wav.channels + 12000);
  for (let i = 0; i < wav.samples.length / wav.channels; i++) out[i] = wav.samples[i * wav.channels + ch]!;
  return out;
}

function slice(tr: Int16Array, from: number, n: number): Int16Array {
  const out = new Int16Array(n);
  for (let i = 0; i < n; i++) out[i] = tr[(from + i) % tr.length]!;
  return out;
}

function channel(x: Int16Array, channels: number, c: number): Int16Array {
  const out = new Int16Array(x.length / channels);
  for (let i = 0; i < out.length; i++) out[i] = x[i * channels + c]!;
  return out;
}

const td = await startTestDaemon({
  cards: [{ id: 'v0', backend: 'virtual', channels: 8, sampleRate: 8000, readMs: 20 }],
  lines: [
    { id: 'L1', card: 'v0', channels: [0] },
    { id: 'L2', card: 'v0', channels: [1] },
    { id: 'L3', card: 'v0', channels: [6, 7] },
  ],
});
t.teardown(() => td.stop());

t.test('three overlapping calls, one across a 1.5 s blocked main thread, each hold their own line\'s speech', async (t) => {
  await sleep(2500); // let the ring fill, so a start in the past has audio to look back to
  const calls = [
    { callId: 'call-1', line: 'L1', caller: '+358 40 555 0100', service: '029 497 002', agent: { id: 'aino.virtanen', name: 'Aino Virtanen' } },
    { callId: 'call-2', line: 'L2', caller: '050 123 4567', service: '029 497 012', agent: { id: 'mikko.korhonen', name: 'Mikko Korhonen' } },
    { callId: 'call-3', line: 'L3', caller: '', service: '029 497 050', agent: { id: 'liisa.makinen', name: 'Liisa Mäkinen' } },
  ];
  const events: Record<string, { start: Record<string, unknown>; end?: Record<string, unknown>; id?: string }> = {};
  for (const [i, c] of calls.entries()) {
    // Each start is signalled 300 ms late: the recording still begins at its `at`.
    const start = signal('start', c.callId, { line: c.line, caller: c.caller, callerPresentation: c.caller ? 'allowed' : 'restricted', serviceNumber: c.service }, new Date(Date.now() - 300));
    const r = await td.post(start);
    t.equal(r.status, 202);
    events[c.callId] = { start, id: r.json.recordingId };
    await td.post(signal('answer', c.callId, { agent: c.agent }));
    if (i === 0) {
      const until = performance.now() + 1500;
      while (performance.now() < until); // the main thread blocked
    }
    await sleep(700);
  }
  await sleep(1500);
  for (const c of calls) {
    const end = signal('end', c.callId);
    events[c.callId]!.end = end;
    await td.post(end);
    await sleep(400);
  }
  const metas: RecordingMeta[] = [];
  for (const c of calls) {
    metas.push(await waitFor(async () => {
      const m = (await td.daemon.store.get(events[c.callId]!.id!)) as RecordingMeta;
      return m.status !== 'recording' && m.audioSha256 ? m : null;
    }));
  }
  const tracks = [track(0), track(1), [track(6), track(7)]] as const;
  const card = td.daemon.path.deviceOf('v0') as VirtualCard;
  for (const [i, c] of calls.entries()) {
    const m = metas[i]!;
    const ev = events[c.callId]!;
    t.equal(m.status, 'complete', `${c.line}: complete`);
    t.same(m.gaps, [], `${c.line}: no gaps`);
    t.equal(m.caller, c.caller, `${c.line}: caller verbatim`);
    t.equal(m.serviceNumber, c.service);
    t.equal(m.agentId, c.agent.id);
    t.equal(m.agentName, c.agent.name);
    const signalled = Date.parse(ev.end!.at as string) - Date.parse(ev.start.at as string);
    t.ok(Math.abs(m.durationMs! - signalled) <= 40, `${c.line}: duration ${m.durationMs} ms = end - start ${signalled} ms`);

    const pcm = decodeOggOpus(await td.daemon.service.export(testActor(), m.id, 'opus'));
    const frames = pcm.samples.length / pcm.channels;
    t.ok(Math.abs(frames - (m.durationMs! * 8000) / 1000) <= 4, `${c.line}: decodes to ${frames} frames for ${m.durationMs} ms`);
    // Where the call truly began on the card: the virtual card's own clock at the recording's start time
    // (the wall time put on the monotonic clock the card runs on), not the daemon's estimate of it.
    const startFrame = Math.round(card.frameAtMonotonic(Date.parse(m.startedAt) - (Date.now() - performance.now())));
    const n = pcm.samples.length / pcm.channels;
    const mine = Array.isArray(tracks[i]) ? (tracks[i] as Int16Array[]) : [tracks[i] as Int16Array];
    mine.forEach((tr, ch) => {
      const decoded = channel(pcm.samples, pcm.channels, ch);
      const reference = slice(tr, startFrame, n);
      if (rms(reference) < 50) {
        // This party was silent all through the call (the dialogue takes turns): so must its channel be.
        t.ok(rms(decoded) < 100, `${c.line} ch${ch}: a silent party stays silent (rms ${rms(decoded).toFixed(1)})`);
        return;
      }
      const own = bestCorrelation(decoded, slice(tr, startFrame, n), 400);
      t.ok(own.r >= 0.8, `${c.line} ch${ch}: correlates with its own speech (r = ${own.r.toFixed(3)}, lag ${own.lag})`);
      // Within 5 ms of the truth: the daemon knows the card's clock only from when chunks arrive (every 20 ms here).
      t.ok(Math.abs(own.lag) <= 40, `${c.line} ch${ch}: at its true time (lag ${own.lag} samples)`);
      for (const other of [0, 1, 6, 7].filter((o) => track(o) !== tr)) {
        if ((i === 0 && other === 0) || (i === 1 && other === 1) || (i === 2 && other === 6 + ch)) continue;
        const x = bestCorrelation(decoded, slice(track(other), startFrame, n), 400);
        t.ok(x.r < 0.3, `${c.line} ch${ch}: not channel ${other}'s speech (r = ${x.r.toFixed(3)})`);
      }
    });
  }
});
