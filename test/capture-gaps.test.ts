import t from 'tap';
import { resolve } from 'node:path';
import { VirtualCard } from '../daemon/capture/VirtualCard.js';
import { CardReader, type Gap } from '../daemon/capture/CardReader.js';
import { LineRing } from '../daemon/ring/LineRing.js';
import { readWav } from '../daemon/capture/wav.js';

const speech = resolve('daemon/capture/speech/en-allison-demo-congrats.wav');
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));
const busy = (ms: number): void => {
  const until = performance.now() + ms;
  while (performance.now() < until);
};

/** What the virtual card plays on channel 0, worked out from the file: the speech, then 1.5 s of pause, looped. */
function expectedTrack(): Int16Array {
  const wav = readWav(speech);
  const out = new Int16Array(wav.samples.length + 12000);
  out.set(wav.samples);
  return out;
}

async function run(action: (card: VirtualCard) => void): Promise<{ ring: LineRing; gaps: Gap[] }> {
  const card = new VirtualCard({ id: 'v', channels: 2, sampleRate: 8000, speech: [speech], readMs: 20, pauseMs: 1500 });
  const ring = new LineRing(8000 * 30, 1);
  const reader = new CardReader(card, [{ id: 'L', channels: [0], ring }]);
  const gaps: Gap[] = [];
  reader.on('gap', (g: Gap) => gaps.push(g));
  await card.start();
  await sleep(500);
  action(card);
  await sleep(1600);
  await card.stop();
  reader.close();
  return { ring, gaps };
}

t.test('a main thread blocked for 1.5 s loses no audio and notes no gap', async (t) => {
  const { ring, gaps } = await run(() => busy(1500));
  t.same(gaps, [], 'no gap reported');
  const track = expectedTrack();
  const n = ring.writePosition;
  t.ok(n > 8000 * 2.9, `captured ${n} frames over ~3.2 s`);
  const got = new Int16Array(n);
  t.ok(ring.read(0, n, got));
  let mismatches = 0;
  for (let i = 0; i < n; i++) if (got[i] !== track[i % track.length]) mismatches++;
  t.equal(mismatches, 0, 'every frame is the card\'s frame, in order, with none lost or repeated');
});

t.test('a device stall is noted as a gap of its length and filled with silence, keeping time', async (t) => {
  const { ring, gaps } = await run((card) => card.stall(1000));
  t.equal(gaps.length, 1, 'one gap');
  const gap = gaps[0]!;
  t.ok(gap.ms >= 975 && gap.ms <= 1040, `gap of ${gap.ms.toFixed(1)} ms for a 1000 ms stall`);
  const track = expectedTrack();
  const n = ring.writePosition;
  const got = new Int16Array(n);
  t.ok(ring.read(0, n, got));
  let silent = 0;
  for (let i = gap.frame; i < gap.frame + gap.frames; i++) if (got[i] === 0) silent++;
  t.equal(silent, gap.frames, 'the gap is silence');
  // After the gap the card's audio sits at its true time: frame f holds track[f], give or take the
  // estimate's error (a few ms).
  let best = { lag: 0, match: -1 };
  for (let lag = -40; lag <= 40; lag++) {
    let match = 0;
    for (let i = gap.frame + gap.frames + 100; i < n - 100; i++) if (got[i] === track[(i + lag) % track.length]) match++;
    if (match > best.match) best = { lag, match };
  }
  t.ok(Math.abs(best.lag) <= 40, `audio after the gap is ${best.lag} frames (${best.lag / 8} ms) off its true time`);
  t.ok(best.match > (n - gap.frame - gap.frames - 200) * 0.99, 'and is the card\'s audio');
});

t.test('chunks split anywhere, even inside a sample, reach each line unmixed', async (t) => {
  const { EventEmitter } = await import('node:events');
  const channels = 3;
  const frames = 5000;
  const src = Buffer.alloc(frames * channels * 2);
  for (let f = 0; f < frames; f++) for (let c = 0; c < channels; c++) src.writeInt16LE(((f * 7 + c * 1000) % 30000) - 15000, (f * channels + c) * 2);
  const device = Object.assign(new EventEmitter(), { id: 'fake', channels, sampleRate: 8000, start: async () => {}, stop: async () => {} });
  const mono = new LineRing(frames, 1);
  const split = new LineRing(frames, 2);
  const reader = new CardReader(device as never, [
    { id: 'A', channels: [1], ring: mono },
    { id: 'B', channels: [2, 0], ring: split },
  ]);
  let off = 0;
  let size = 1;
  while (off < src.length) {
    device.emit('data', src.subarray(off, Math.min(src.length, off + size)));
    off += size;
    size = (size * 7 + 3) % 97 || 1;
  }
  reader.close();
  t.equal(mono.writePosition, frames);
  const a = new Int16Array(frames);
  const b = new Int16Array(frames * 2);
  mono.read(0, frames, a);
  split.read(0, frames, b);
  let bad = 0;
  for (let f = 0; f < frames; f++) {
    if (a[f] !== src.readInt16LE((f * channels + 1) * 2)) bad++;
    if (b[f * 2] !== src.readInt16LE((f * channels + 2) * 2) || b[f * 2 + 1] !== src.readInt16LE((f * channels + 0) * 2)) bad++;
  }
  t.equal(bad, 0, 'every sample on its own line and channel');
});
