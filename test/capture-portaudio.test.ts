import t, { type Test } from 'tap';
import { resolve } from 'node:path';
import { performance } from 'node:perf_hooks';
import { PortAudioCard, type PortAudioCardOptions } from '../daemon/capture/PortAudioCard.js';
import { bestCorrelation, readWav, rms } from './helpers/audio.js';
import { startPulseCard } from './helpers/pulseCard.js';
import { bundledSpeech } from './helpers/speech.js';

const RATE = 8000;
const LINES = 8;
const WINDOW_MS = 4000;
const speech = bundledSpeech;
const PLAYED = [
  { line: 0, file: speech('en-allison-demo-congrats.wav') },
  { line: 3, file: speech('it-carlo-priv-callee-options.wav') },
  { line: 5, file: speech('codec2-david4.wav') },
];

const card = await startPulseCard(LINES, RATE);
t.teardown(() => card.stop());

const options = (over: Partial<PortAudioCardOptions> = {}): PortAudioCardOptions => ({
  id: 'pa0',
  device: card.device,
  channels: LINES,
  sampleRate: RATE,
  framesPerBuffer: 160, // 20 ms callbacks
  maxQueue: 150, // 3 s
  readMs: 20,
  ...over,
});

/** Each card is stopped when its subtest ends, even on failure: a stream left open on a dead server blocks process exit. */
function openCard(t: Test, over: Partial<PortAudioCardOptions> = {}): PortAudioCard {
  const pa = new PortAudioCard(options(over));
  t.teardown(() => pa.stop());
  return pa;
}

/** Resolves with the time of the next chunk; PulseAudio takes 0.1-2 s to deliver the first one. */
function nextData(pa: PortAudioCard, timeoutMs = 5000): Promise<number> {
  return new Promise((res, rej) => {
    const timer = setTimeout(() => rej(new Error(`no data within ${timeoutMs} ms`)), timeoutMs);
    pa.once('data', () => {
      clearTimeout(timer);
      res(performance.now());
    });
  });
}

function deinterleave(bytes: Buffer, channels: number): Int16Array[] {
  const frames = Math.floor(bytes.length / (2 * channels));
  const out = Array.from({ length: channels }, () => new Int16Array(frames));
  for (let f = 0; f < frames; f++) for (let c = 0; c < channels; c++) out[c]![f] = bytes.readInt16LE((f * channels + c) * 2);
  return out;
}

t.test('each played line is captured on its own channel only', async (t) => {
  const sources = PLAYED.map((p) => readWav(p.file));
  for (const s of sources) t.match(s, { sampleRate: RATE, channels: 1 }, 'source is 8 kHz mono');
  const pa = openCard(t);
  pa.on('error', (err) => t.fail(`capture error: ${err.message}`));
  const chunks: Buffer[] = [];
  pa.on('data', (c: Buffer) => chunks.push(c));

  const t0 = performance.now();
  await pa.start();
  const first = await nextData(pa);
  t.comment(`first data ${(first - t0).toFixed(0)} ms after start()`);

  chunks.length = 0;
  const tPlay = performance.now();
  const players = PLAYED.map((p) => card.play(p.line, p.file));
  await new Promise((r) => setTimeout(r, WINDOW_MS));
  await pa.stop();
  const elapsed = performance.now() - tPlay;
  for (const p of players) p.kill();

  const bytes = Buffer.concat(chunks);
  const lines = deinterleave(bytes, LINES);
  const frames = lines[0]!.length;
  t.comment(`${frames} frames in ${elapsed.toFixed(0)} ms; chunk sizes ${[...new Set(chunks.map((c) => c.length))].join(',')}`);
  t.ok(Math.abs(frames / RATE - elapsed / 1000) < 0.3, 'frames received match the clock within 0.3 s');

  const maxLag = 2 * RATE;
  PLAYED.forEach((p, i) => {
    sources.forEach((src, j) => {
      const { r, lag } = bestCorrelation(lines[p.line]!, src.samples, maxLag);
      const what = `line ${p.line} vs source ${j}: r=${r.toFixed(3)} lag=${((lag / RATE) * 1000).toFixed(0)} ms`;
      if (i === j) t.ok(r >= 0.8, `${what} (own source)`);
      else t.ok(r < 0.3, `${what} (other source)`);
    });
  });
  const loud = Math.min(...PLAYED.map((p) => rms(lines[p.line]!)));
  for (let line = 0; line < LINES; line++) {
    if (PLAYED.some((p) => p.line === line)) continue;
    const level = rms(lines[line]!);
    t.ok(level < 20 && level < loud / 100, `silent line ${line} stays silent (rms ${level.toFixed(1)}, played ${loud.toFixed(0)})`);
  }
});

t.test('stop is idempotent, and the card reopens', async (t) => {
  const pa = openCard(t);
  pa.on('error', (err) => t.fail(`capture error: ${err.message}`));
  for (let round = 0; round < 2; round++) {
    await pa.start();
    await nextData(pa);
    await Promise.all([pa.stop(), pa.stop()]);
    let late = 0;
    pa.on('data', () => late++);
    await pa.stop();
    await new Promise((r) => setTimeout(r, 300));
    t.equal(late, 0, `round ${round}: no data after stop()`);
    pa.removeAllListeners('data');
  }
});

t.test('a missing device rejects with DEVICE_NOT_FOUND', async (t) => {
  const pa = openCard(t, { device: 'no_such_card_0' });
  await t.rejects(pa.start(), { name: 'CaptureError', code: 'DEVICE_NOT_FOUND', message: /callrec_card/ });
});

t.test('a queue shorter than 2 s is refused', async (t) => {
  t.throws(() => new PortAudioCard(options({ maxQueue: 50 })), { name: 'CaptureError', code: 'BAD_FORMAT', message: /holds 1\.00 s .*maxQueue >= 100/ });
});

// Last: it kills the card's sound server.
t.test('a card that disappears is reported as DEVICE_READ_FAILED', async (t) => {
  const pa = openCard(t);
  await pa.start();
  await nextData(pa);
  const failed = new Promise<Error>((res) => pa.once('error', res));
  const t0 = performance.now();
  card.crash();
  t.match(await failed, { name: 'CaptureError', code: 'DEVICE_READ_FAILED' });
  t.comment(`reported ${(performance.now() - t0).toFixed(0)} ms after the server died`);
  await pa.stop();
  await t.rejects(pa.start(), { name: 'CaptureError' }, 'reopening a dead card rejects');
});
