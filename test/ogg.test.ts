/**
 * Ogg Opus files as the encoder writes them, checked against values worked out by hand (granules,
 * packet counts, page flags) and against a different implementation (opus-tools: opusenc, opusdec,
 * opusinfo; an independent page parser and bit-by-bit CRC in helpers/oggTools.ts).
 *
 * Arithmetic used throughout (RFC 7845, libopus 1.3.1):
 * - a packet is one 20 ms frame = 960 samples at 48 kHz = 160 frames at 8 kHz, 320 at 16 kHz;
 * - the encoder's lookahead is 2.5 ms + 4 ms = 6.5 ms = 312 samples at 48 kHz (52 at 8 kHz, 104 at 16 kHz),
 *   which opusenc also writes as its pre-skip for 8 and 16 kHz input;
 * - to code N frames the encoder needs N + lookahead input frames, so ceil((N + lookahead) / frameSize) packets;
 * - the final granule is pre-skip + N * (48000 / rate).
 */
import t from 'tap';
import { createHash } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { EncodeSession } from '../daemon/encode/EncodeSession.js';
import type { EncodeResult } from '../daemon/encode/messages.js';
import { LineRing } from '../daemon/ring/LineRing.js';
import { wavBytes } from '../daemon/capture/wav.js';
import { oggCrc } from '../daemon/store/ogg/crc.js';
import { readOggOpus } from '../daemon/store/ogg/OggReader.js';
import { repairOggOpus } from '../daemon/store/ogg/repairOggOpus.js';
import { OggOpusWriter } from '../daemon/store/ogg/OggOpusWriter.js';
import { decodeOggOpus } from '../daemon/store/ogg/decodeOggOpus.js';
import type { OpusHead } from '../daemon/store/ogg/opusHeaders.js';
import { readWav, rms } from './helpers/audio.js';
import { bundledSpeech, testSpeech } from './helpers/speech.js';
import {
  FLAG_BOS,
  FLAG_CONTINUED,
  FLAG_EOS,
  bestLag,
  channelOf,
  correlationAt,
  decodeAllPackets,
  opusdec,
  opusenc,
  opusinfo,
  refCrc,
  refOpusHead,
  refPackets,
  refParsePages,
  requireOpusTools,
  withPreSkip,
  zeroedCrc,
  type RefPage,
} from './helpers/oggTools.js';


const CONGRATS = bundledSpeech('en-allison-demo-congrats.wav'); // 8 kHz mono, 30 s
const JFK = testSpeech('jfk-16k.wav'); // 16 kHz mono, 11 s
const DIALOGUE = bundledSpeech('dialogue-two-party.wav'); // 8 kHz stereo, 41 s

requireOpusTools();

/** A subtest's `t` (the last overload of t.test takes just the callback). */
type TT = Parameters<Parameters<typeof t.test>[0]>[0];

const dir = mkdtempSync(join(tmpdir(), 'callrec-ogg-test-'));
t.teardown(() => rmSync(dir, { recursive: true, force: true }));

let fileNo = 0;
const tmp = (name: string) => join(dir, `${++fileNo}-${name}`);

interface Recorded {
  path: string;
  bytes: Buffer;
  result: EncodeResult;
}

interface RecordOptions {
  name: string;
  rate: number;
  channels: number;
  /** Interleaved audio written into the ring from frame 0. */
  audio: Int16Array;
  startFrame?: number;
  end: number;
  force?: boolean;
  holdMs?: number;
  /** Frames written into the ring between pumps. */
  chunk?: number;
  serial?: number;
}

/**
 * Runs a recording through EncodeSession as a worker would: ring written in chunks, a pump after each,
 * then stop and a final pump, which must return the result.
 */
function record(o: RecordOptions): Recorded {
  const total = o.audio.length / o.channels;
  const start = o.startFrame ?? 0;
  const chunk = o.chunk ?? o.rate / 10;
  const ring = new LineRing(total + o.rate, o.channels);
  const chans = Array.from({ length: o.channels }, (_, c) => c);
  ring.writeFrom(o.audio, 0, start, o.channels, chans);
  const path = tmp(`${o.name}.opus`);
  const session = new EncodeSession({
    id: o.name,
    path,
    ring: ring.handle(),
    sampleRate: o.rate,
    startFrame: start,
    bitrate: 16000,
    complexity: 5,
    pageFlushMs: 0,
    holdMs: o.holdMs ?? 300,
    serial: o.serial ?? 0x5eed0001,
  });
  for (let f = start; f < total; f += chunk) {
    ring.writeFrom(o.audio, f, Math.min(chunk, total - f), o.channels, chans);
    if (session.pump() !== null) throw new Error('result before stop');
  }
  session.stop(o.end, o.force ?? false);
  const result = session.pump();
  if (result === null) throw new Error(`${o.name}: no result after stop(${o.end}) with ${total} frames in the ring`);
  return { path, bytes: readFileSync(path), result };
}

/** Frames [from, from + n) of a WAV (interleaved), checked for the expected format. */
function framesOf(path: string, rate: number, channels: number, n: number, from = 0): Int16Array {
  const w = readWav(path);
  if (w.sampleRate !== rate || w.channels !== channels) throw new Error(`${path}: ${w.sampleRate} Hz x${w.channels}, expected ${rate} x${channels}`);
  if (w.samples.length < (from + n) * channels) throw new Error(`${path}: shorter than ${from + n} frames`);
  return w.samples.slice(from * channels, (from + n) * channels);
}

/** Samples at 48 kHz of one Opus packet, from its TOC byte (RFC 6716 section 3.1). */
function packetSamples48(p: Buffer): number {
  const config = p[0]! >> 3;
  const perFrame =
    config < 12 ? [480, 960, 1920, 2880][config & 3]! : config < 16 ? [480, 960][config & 1]! : [120, 240, 480, 960][config & 3]!;
  const code = p[0]! & 3;
  const frames = code === 0 ? 1 : code === 3 ? p[1]! & 0x3f : 2;
  return perFrame * frames;
}

interface Expect {
  channels: number;
  rate: number;
  packets: number;
  finalGranule: bigint;
  serial: number;
}

/** Every structural property of a finished file, from the independent parser. */
function checkStructure(t: TT, bytes: Buffer, e: Expect): RefPage[] {
  const pages = refParsePages(bytes);
  t.ok(pages.length >= 3, `at least 3 pages (${pages.length})`);
  t.same(
    pages.map((p) => p.sequence),
    pages.map((_, i) => i),
    'page sequence numbers 0..n-1',
  );
  t.ok(pages.every((p) => p.serial === e.serial), 'one serial on every page');
  t.ok(pages.every((p) => p.version === 0), 'stream structure version 0');
  t.same(
    pages.map((p) => (p.flags & FLAG_BOS) !== 0),
    pages.map((_, i) => i === 0),
    'BOS on the first page only',
  );
  t.same(
    pages.map((p) => (p.flags & FLAG_EOS) !== 0),
    pages.map((_, i) => i === pages.length - 1),
    'EOS on the last page only',
  );
  t.ok(pages.every((p) => (p.flags & FLAG_CONTINUED) === 0), 'no page continues a packet');
  t.ok(pages.every((p) => refCrc(zeroedCrc(p.raw)) === p.storedCrc), 'every page CRC matches the bit-by-bit reference');
  // Header pages: exactly one packet each, granule 0.
  t.same(pages[0]!.lacing.length, 1, 'OpusHead alone on page 0');
  t.equal(pages[0]!.granule, 0n, 'page 0 granule 0');
  t.equal(pages[1]!.granule, 0n, 'page 1 granule 0');
  const packets = refPackets(pages);
  const head = refOpusHead(packets[0]!);
  t.same(head, { version: 1, channels: e.channels, preSkip: 312, inputRate: e.rate, gain: 0, mapping: 0 }, 'OpusHead fields');
  t.equal(packets[1]!.toString('latin1', 0, 8), 'OpusTags', 'OpusTags second');
  const tags = packets[1]!;
  const vendorLen = tags.readUInt32LE(8);
  t.equal(tags.readUInt32LE(12 + vendorLen), 0, 'no user comments (nothing about the call)');
  t.equal(12 + vendorLen + 4, tags.length, 'OpusTags has no trailing bytes');
  // Page 1 ends with OpusTags: the first audio packet starts a page (RFC 7845 section 3).
  t.equal(refPackets(pages.slice(0, 2)).length, 2, 'headers end on page 1');
  const audio = packets.slice(2);
  t.equal(audio.length, e.packets, `${e.packets} audio packets`);
  t.ok(audio.every((p) => packetSamples48(p) === 960), 'every packet is one 20 ms frame (960 at 48 kHz)');
  t.ok(audio.every((p) => ((p[0]! >> 2) & 1) === (e.channels === 2 ? 1 : 0)), `TOC stereo bit matches ${e.channels} channel(s)`);
  // Granule of each audio page but the last: 960 x packets completed so far. The last: trimmed to the length.
  let done = 0;
  const wrong: string[] = [];
  for (let i = 2; i < pages.length; i++) {
    done += pages[i]!.lacing.filter((l) => l < 255).length;
    const want = i === pages.length - 1 ? e.finalGranule : BigInt(done * 960);
    if (pages[i]!.granule !== want) wrong.push(`page ${i}: ${pages[i]!.granule} != ${want}`);
  }
  t.same(wrong, [], 'page granules: 960 per packet, the last one trimmed');
  t.equal(pages[pages.length - 1]!.granule, e.finalGranule, `final granule ${e.finalGranule}`);
  t.ok(e.finalGranule <= BigInt(done * 960) && e.finalGranule > BigInt((done - 1) * 960), 'end trimming removes less than one packet');
  return pages;
}

function checkResult(t: TT, r: Recorded, frames: number, finalGranule: bigint): void {
  t.equal(r.result.finalGranule, finalGranule.toString(), 'result.finalGranule');
  t.equal(r.result.frames, frames, 'result.frames');
  t.equal(r.result.clampedEnd, false, 'not clamped');
  t.same(r.result.overruns, [], 'no overruns');
  t.equal(r.result.audioBytes, statSync(r.path).size, 'audioBytes is the file size');
  t.equal(r.result.audioSha256, createHash('sha256').update(r.bytes).digest('hex'), 'audioSha256 is the file hash');
}

function checkOpusinfo(t: TT, path: string, seconds?: number): void {
  const info = opusinfo(path);
  t.equal(info.status, 0, 'opusinfo exits 0');
  t.same(info.problems, [], 'opusinfo: no warning or error lines');
  t.equal(info.preSkip, 312, 'opusinfo reads pre-skip 312');
  // opusinfo prints the length truncated to the millisecond.
  if (seconds !== undefined) t.ok(info.playbackS !== null && Math.abs(info.playbackS - seconds) < 0.001, `opusinfo playback length ${info.playbackS} s ~ ${seconds} s`);
  if (info.problems.length > 0) t.comment(info.output);
}

// ---------------------------------------------------------------------------------------------------
// 1. Granules, flags and headers, by hand

t.test('granules by hand', async (t) => {
  const c8 = framesOf(CONGRATS, 8000, 1, 8400);
  const j16 = framesOf(JFK, 16000, 1, 16800);
  const d8 = framesOf(DIALOGUE, 8000, 2, 8400);

  const cases: Array<{ name: string; opts: RecordOptions; e: Expect; frames: number; seconds: number }> = [
    {
      // 8000 + 52 input frames -> ceil(8052 / 160) = 51 packets; granule 312 + 8000 * 6 = 48312.
      name: '1.00 s at 8 kHz, mono',
      opts: { name: 'mono8k', rate: 8000, channels: 1, audio: c8, end: 8000 },
      e: { channels: 1, rate: 8000, packets: 51, finalGranule: 48312n, serial: 0x5eed0001 },
      frames: 8000,
      seconds: 1,
    },
    {
      // Same, but capture stops: the ring holds exactly 8000 frames, the rest is silence padding.
      name: '1.00 s at 8 kHz, forced with exactly 8000 frames in the ring',
      opts: { name: 'mono8k-force', rate: 8000, channels: 1, audio: c8.slice(0, 8000), end: 8000, force: true },
      e: { channels: 1, rate: 8000, packets: 51, finalGranule: 48312n, serial: 0x5eed0001 },
      frames: 8000,
      seconds: 1,
    },
    {
      // Capture stops mid-frame: 8037 frames in the ring, the last 37 go out in a frame padded with silence.
      name: '8037 frames at 8 kHz, forced with exactly 8037 frames in the ring',
      opts: { name: 'mono8k-8037-force', rate: 8000, channels: 1, audio: c8.slice(0, 8037), end: 8037, force: true },
      e: { channels: 1, rate: 8000, packets: 51, finalGranule: 48534n, serial: 0x5eed0001 },
      frames: 8037,
      seconds: 8037 / 8000,
    },
    {
      // 16000 + 104 -> ceil(16104 / 320) = 51 packets; granule 312 + 16000 * 3 = 48312.
      name: '1.00 s at 16 kHz, mono',
      opts: { name: 'mono16k', rate: 16000, channels: 1, audio: j16, end: 16000, serial: 0xfedcba98 },
      e: { channels: 1, rate: 16000, packets: 51, finalGranule: 48312n, serial: 0xfedcba98 },
      frames: 16000,
      seconds: 1,
    },
    {
      name: '1.00 s at 8 kHz, 2-channel line',
      opts: { name: 'stereo8k', rate: 8000, channels: 2, audio: d8, end: 8000, serial: 7 },
      e: { channels: 2, rate: 8000, packets: 51, finalGranule: 48312n, serial: 7 },
      frames: 8000,
      seconds: 1,
    },
    {
      // 8037 + 52 = 8089 -> ceil(8089 / 160) = 51 packets; granule 312 + 8037 * 6 = 48534.
      name: '8037 frames at 8 kHz (not a multiple of 20 ms)',
      opts: { name: 'mono8k-8037', rate: 8000, channels: 1, audio: c8, end: 8037 },
      e: { channels: 1, rate: 8000, packets: 51, finalGranule: 48534n, serial: 0x5eed0001 },
      frames: 8037,
      seconds: 8037 / 8000,
    },
    {
      // 8100 + 52 = 8152 -> ceil(8152 / 160) = 51; 8109 + 52 = 8161 -> 52 packets; granule 312 + 8109 * 6 = 48966.
      name: '8109 frames at 8 kHz (one more packet for the lookahead)',
      opts: { name: 'mono8k-8109', rate: 8000, channels: 1, audio: c8, end: 8109 },
      e: { channels: 1, rate: 8000, packets: 52, finalGranule: 48966n, serial: 0x5eed0001 },
      frames: 8109,
      seconds: 8109 / 8000,
    },
    {
      // A recording that does not start at frame 0: only end - start counts. 6000 + 52 -> 38 packets.
      name: 'start 2400, end 8400 at 8 kHz',
      opts: { name: 'mono8k-offset', rate: 8000, channels: 1, audio: framesOf(CONGRATS, 8000, 1, 8800), startFrame: 2400, end: 8400 },
      e: { channels: 1, rate: 8000, packets: 38, finalGranule: 36312n, serial: 0x5eed0001 },
      frames: 6000,
      seconds: 0.75,
    },
  ];
  for (const c of cases) {
    t.test(c.name, async (t) => {
      const r = record(c.opts);
      checkStructure(t, r.bytes, c.e);
      checkResult(t, r, c.frames, c.e.finalGranule);
      // The product's reader agrees with the independent parser.
      const ours = readOggOpus(r.bytes);
      t.equal(ours.packets.length, c.e.packets, 'readOggOpus packet count');
      t.equal(ours.finalGranule, c.e.finalGranule, 'readOggOpus final granule');
      t.equal(ours.endOfStream, true, 'readOggOpus sees EOS');
      checkOpusinfo(t, r.path, c.seconds);
    });
  }
});

// ---------------------------------------------------------------------------------------------------
// 2. CRC against opusenc's pages; opusinfo on ours

t.test('CRC of pages written by opusenc', async (t) => {
  // A real speech file, and a synthetic 16 kHz stereo WAV made with wavBytes.
  const stereo = new Int16Array(2 * 16000 * 2);
  for (let i = 0; i < stereo.length / 2; i++) {
    stereo[2 * i] = Math.round(8000 * Math.sin((2 * Math.PI * 440 * i) / 16000));
    stereo[2 * i + 1] = Math.round(6000 * Math.sin((2 * Math.PI * 1234 * i) / 16000) + 500 * Math.sin(i * 0.37));
  }
  const stereoWav = tmp('stereo16k.wav');
  writeFileSync(stereoWav, wavBytes({ sampleRate: 16000, channels: 2, samples: stereo }));
  for (const [name, wav] of [
    ['speech 8 kHz mono', CONGRATS],
    ['synthetic 16 kHz stereo', stereoWav],
  ] as const) {
    t.test(name, async (t) => {
      const out = tmp('opusenc.opus');
      opusenc(wav, out);
      const pages = refParsePages(readFileSync(out));
      t.ok(pages.length >= 3, `${pages.length} pages`);
      const bad = pages.filter((p) => oggCrc(zeroedCrc(p.raw)) !== p.storedCrc).map((p) => p.sequence);
      t.same(bad, [], 'oggCrc equals the stored CRC on every page');
      t.ok(pages.every((p) => refCrc(zeroedCrc(p.raw)) === p.storedCrc), 'and so does the reference CRC (helper sanity)');
      // opusenc's own pre-skip for 8/16 kHz input is the 312 the daemon hard-codes.
      t.equal(refOpusHead(refPackets(pages.slice(0, 1))[0]!).preSkip, 312, "opusenc's pre-skip is 312");
      // Our reader accepts opusenc's file (CRC check included).
      t.doesNotThrow(() => readOggOpus(readFileSync(out)), 'readOggOpus reads the opusenc file');
    });
  }
  t.test('known check value', async (t) => {
    // CRC-32/CKSUM (same polynomial and init 0, but a final xor with 0xffffffff) has check value 0x765e7680
    // for "123456789"; Ogg's CRC has no final xor, so its check value is 0x765e7680 ^ 0xffffffff = 0x89a1897f.
    const check = Buffer.from('123456789', 'ascii');
    t.equal(refCrc(check), 0x89a1897f, 'reference CRC');
    t.equal(oggCrc(check), 0x89a1897f, 'oggCrc');
  });
});

// ---------------------------------------------------------------------------------------------------
// 3. Pre-skip: decoded length (opusdec and decodeOggOpus) and alignment with the source

t.test('pre-skip and end trimming: decoded sample counts', async (t) => {
  const c8 = framesOf(CONGRATS, 8000, 1, 8400);
  const cases = [
    { name: 'mono 8 kHz, 8000 frames', rate: 8000, channels: 1, audio: c8, end: 8000 },
    { name: 'mono 8 kHz, 8037 frames', rate: 8000, channels: 1, audio: c8, end: 8037 },
    { name: 'mono 8 kHz, 8109 frames', rate: 8000, channels: 1, audio: c8, end: 8109 },
    { name: 'mono 16 kHz, 16000 frames', rate: 16000, channels: 1, audio: framesOf(JFK, 16000, 1, 16800), end: 16000 },
    // 15 s into the dialogue, where the right party talks (the left channel is near-silent there).
    { name: 'stereo 8 kHz, 8000 frames', rate: 8000, channels: 2, audio: framesOf(DIALOGUE, 8000, 2, 8400, 120000), end: 8000 },
  ];
  for (const c of cases) {
    t.test(c.name, async (t) => {
      const r = record({ ...c, name: 'count' });
      const sys = opusdec(r.path, tmp('count.wav'), c.rate);
      t.equal(sys.channels, c.channels, 'opusdec channels');
      t.equal(sys.sampleRate, c.rate, 'opusdec rate');
      t.equal(sys.samples.length / c.channels, c.end, `opusdec gives ${c.end} frames`);
      const ours = decodeOggOpus(r.bytes, c.rate);
      t.equal(ours.channels, c.channels, 'decodeOggOpus channels');
      t.equal(ours.samples.length / c.channels, c.end, `decodeOggOpus gives ${c.end} frames`);
      // Without a rate, decodeOggOpus decodes at the captured rate.
      t.equal(decodeOggOpus(r.bytes).sampleRate, c.rate, 'decodeOggOpus default rate is the input rate');
      // opusdec decodes at 48 kHz and resamples (speex resampler, its delay compensated to about a
      // sample), decodeOggOpus decodes at the output rate: not bit-exact, but the same audio.
      for (let ch = 0; ch < c.channels; ch++) {
        const a = channelOf(ours.samples, c.channels, ch), b = channelOf(sys.samples, c.channels, ch);
        if (rms(b) < 50) continue; // a silent channel: nothing to line up
        const best = bestLag(a, b, 20);
        t.ok(Math.abs(best.lag) <= 1 && best.r > 0.9, `ch${ch}: opusdec and decodeOggOpus agree within a sample (best lag ${best.lag}, r = ${best.r.toFixed(3)})`);
      }
    });
  }
});

t.test('pre-skip aligns decoded speech with its source', async (t) => {
  const cases = [
    { name: '5 s of speech at 8 kHz', rate: 8000, channels: 1, path: CONGRATS, frames: 40000, lookahead: 52 },
    { name: '5 s of speech at 16 kHz', rate: 16000, channels: 1, path: JFK, frames: 80000, lookahead: 104 },
    // 5 s to 10 s of the dialogue: the right party talks until about 8 s, then the left one.
    { name: '5 s of a two-party line at 8 kHz', rate: 8000, channels: 2, path: DIALOGUE, frames: 40000, lookahead: 52, from: 40000 },
  ];
  for (const c of cases) {
    t.test(c.name, async (t) => {
      const audio = framesOf(c.path, c.rate, c.channels, c.frames + c.rate / 10, c.from ?? 0);
      const r = record({ name: 'align', rate: c.rate, channels: c.channels, audio, end: c.frames });
      const sys = opusdec(r.path, tmp('align.wav'), c.rate);
      const ours = decodeOggOpus(r.bytes, c.rate);
      const maxLag = 3 * c.lookahead;
      for (let ch = 0; ch < c.channels; ch++) {
        const src = channelOf(audio, c.channels, ch).subarray(0, c.frames);
        for (const [who, dec] of [
          ['opusdec', channelOf(sys.samples, c.channels, ch)],
          ['decodeOggOpus', channelOf(ours.samples, c.channels, ch)],
        ] as const) {
          t.equal(dec.length, c.frames, `${who} ch${ch}: ${c.frames} frames`);
          const best = bestLag(dec, src, maxLag);
          t.ok(Math.abs(best.lag) <= 1, `${who} ch${ch}: best lag ${best.lag} within +-1 of 0`);
          t.ok(best.r >= 0.8, `${who} ch${ch}: r = ${best.r.toFixed(3)} >= 0.8`);
        }
      }
      if (c.channels === 2) {
        // 5-7 s: only the right party talks. Forcing two coded channels keeps it out of the left one.
        const quiet = rms(channelOf(ours.samples, 2, 0).subarray(0, 2 * c.rate));
        const loud = rms(channelOf(ours.samples, 2, 1).subarray(0, 2 * c.rate));
        t.ok(quiet < 0.05 * loud, `no leak into the silent channel (rms ${quiet.toFixed(0)} vs ${loud.toFixed(0)})`);
      }
      // Decoding every packet with no pre-skip: the audio runs late by exactly the encoder's lookahead,
      // which is what a pre-skip of 312 at 48 kHz (312 / (48000 / rate) at this rate) removes.
      const packets = refPackets(refParsePages(r.bytes)).slice(2);
      const raw = decodeAllPackets(packets, c.rate, c.channels);
      t.equal(raw.length / c.channels, packets.length * (c.rate / 50), 'every packet decodes to 20 ms');
      // The same through opusdec: the file with its OpusHead pre-skip set to 0 (CRC re-stamped by the helper).
      const noSkipPath = tmp('noskip.opus');
      writeFileSync(noSkipPath, withPreSkip(r.bytes, 0));
      const sysRaw = opusdec(noSkipPath, tmp('noskip.wav'), c.rate);
      t.equal(sysRaw.samples.length / c.channels, c.frames + c.lookahead, 'opusdec with pre-skip 0: the lookahead more frames');
      for (let ch = 0; ch < c.channels; ch++) {
        const src = channelOf(audio, c.channels, ch).subarray(0, c.frames);
        for (const [who, dec] of [
          ['libopus, all packets', channelOf(raw, c.channels, ch)],
          ['opusdec, pre-skip 0', channelOf(sysRaw.samples, c.channels, ch)],
        ] as const) {
          const best = bestLag(dec, src, maxLag);
          // opusdec's resampler delay compensation is only good to one sample (off by one at 16 kHz).
          const tolerance = who.startsWith('opusdec') ? 1 : 0;
          t.ok(Math.abs(best.lag - c.lookahead) <= tolerance, `${who}, ch${ch}: the audio is ${best.lag} samples late, expected ${c.lookahead}${tolerance ? ' +-1' : ''} (r = ${best.r.toFixed(3)})`);
        }
      }
    });
  }
});

// ---------------------------------------------------------------------------------------------------
// 4. Repair of a file cut at every byte offset

t.test('repair a file cut at every byte offset', async (t) => {
  const audio = framesOf(CONGRATS, 8000, 1, 24400);
  // 3 s, pages of 5 packets (one pump per 100 ms, everything older than 300 ms flushed at each pump).
  const orig = record({ name: 'repair-src', rate: 8000, channels: 1, audio, end: 24000, serial: 0xc0ffee });
  const bytes = orig.bytes;
  const op = refParsePages(bytes);
  const origFinal = op[op.length - 1]!.granule;
  t.equal(origFinal, 312n + 24000n * 6n, 'original final granule 144312');
  t.ok(op.length >= 10, `original has ${op.length} pages`);
  const headerEnd = op[1]!.offset + op[1]!.length;
  const firstAudioEnd = op[2]!.offset + op[2]!.length;
  // A rebuilt stream: the two header pages as written (same OpusHead, same OpusTags) + a page of one
  // 1-byte packet: 27 + 1 lacing value + 1.
  const rebuiltSize = headerEnd + 27 + 1 + 1;
  const fallback: OpusHead = { channels: 1, preSkip: 312, inputSampleRate: 8000, outputGain: 0 };
  /** End of the last whole page at or before `cut`. */
  const wholeEnd = (cut: number) => op.filter((p) => p.offset + p.length <= cut).reduce((e, p) => p.offset + p.length, 0);

  // Failures grouped by reason: how many cuts, the first and last of them.
  const byReason = new Map<string, { n: number; first: number; last: number }>();
  const fail = (cut: number, why: string) => {
    const e = byReason.get(why);
    if (e) {
      e.n++;
      e.last = cut;
    } else byReason.set(why, { n: 1, first: cut, last: cut });
  };
  let rebuiltCount = 0;
  for (let cut = 0; cut <= bytes.length; cut++) {
    const input = bytes.subarray(0, cut);
    let r;
    try {
      r = repairOggOpus(input, fallback);
    } catch (e) {
      fail(cut, `repair threw ${(e as Error).message}`);
      continue;
    }
    const out = r.bytes;
    let parsed;
    try {
      parsed = readOggOpus(out);
    } catch (e) {
      fail(cut, `readOggOpus threw ${(e as Error).message}`);
      continue;
    }
    if (!parsed.endOfStream) fail(cut, 'no EOS');
    if (parsed.finalGranule !== r.finalGranule) fail(cut, `result finalGranule ${r.finalGranule} != file ${parsed.finalGranule}`);
    if (parsed.finalGranule > origFinal) fail(cut, `final granule ${parsed.finalGranule} > original ${origFinal}`);
    // Independent structural checks.
    let pages: RefPage[];
    try {
      pages = refParsePages(out);
    } catch (e) {
      fail(cut, `reference parser: ${(e as Error).message}`);
      continue;
    }
    const last = pages.length - 1;
    if (pages.some((p, i) => p.sequence !== i)) fail(cut, 'sequence numbers not 0..n-1');
    // Until the first page is whole the serial is not known from an intact page: only consistency is required.
    if (pages.some((p) => p.serial !== pages[0]!.serial)) fail(cut, 'serial differs between pages');
    if (cut >= op[0]!.length && pages[0]!.serial !== 0xc0ffee) fail(cut, 'serial changed');
    if (pages.some((p, i) => ((p.flags & FLAG_BOS) !== 0) !== (i === 0))) fail(cut, 'BOS not on the first page only');
    if (pages.some((p, i) => ((p.flags & FLAG_EOS) !== 0) !== (i === last))) fail(cut, 'EOS not on the last page only');
    if (pages.some((p) => refCrc(zeroedCrc(p.raw)) !== p.storedCrc)) fail(cut, 'bad CRC');
    if (pages.some((p, i) => i > 0 && p.granule < pages[i - 1]!.granule)) fail(cut, 'granule decreases');
    const head = refOpusHead(refPackets(pages)[0]!);
    if (head.preSkip !== 312 || head.channels !== 1 || head.inputRate !== 8000) fail(cut, `OpusHead ${JSON.stringify(head)}`);
    if (pages[last]!.granule <= 312n && !r.rebuilt) fail(cut, 'last granule within pre-skip');
    if (r.cutBytes !== cut - wholeEnd(cut)) fail(cut, `cutBytes ${r.cutBytes}, expected ${cut - wholeEnd(cut)}`);
    if (r.rebuilt) {
      rebuiltCount++;
      if (cut >= firstAudioEnd) fail(cut, 'rebuilt although an audio page survived');
      if (out.length > cut + rebuiltSize) fail(cut, `rebuilt length ${out.length} > cut + ${rebuiltSize}`);
      if (out.length !== rebuiltSize) fail(cut, `rebuilt length ${out.length}, expected ${rebuiltSize}`);
      // The header pages as the original wrote them (same serial, OpusHead, vendor), then one audio packet.
      if (cut >= op[0]!.length && !out.subarray(0, headerEnd).equals(bytes.subarray(0, headerEnd))) fail(cut, 'rebuilt header pages differ from the original ones');
      if (parsed.packets.length !== 1) fail(cut, `rebuilt with ${parsed.packets.length} audio packets`);
    } else {
      if (cut < firstAudioEnd) fail(cut, 'not rebuilt although no audio page survived');
      if (out.length > cut) fail(cut, `length ${out.length} > cut ${cut}`);
      if (out.length !== wholeEnd(cut)) fail(cut, `length ${out.length}, expected the last whole page to end at ${wholeEnd(cut)}`);
      // A byte prefix of the original, except the last page's flags byte and CRC.
      const lp = pages[last]!;
      const expected = Buffer.from(bytes.subarray(0, out.length));
      const origPage = op[last]!;
      if (origPage.offset !== lp.offset || origPage.length !== lp.length) fail(cut, 'last page moved');
      if (out[lp.offset + 5] !== (origPage.flags | FLAG_EOS)) fail(cut, `last page flags ${out[lp.offset + 5]}, expected ${origPage.flags | FLAG_EOS}`);
      expected[lp.offset + 5] = out[lp.offset + 5]!;
      expected.writeUInt32LE(out.readUInt32LE(lp.offset + 22), lp.offset + 22);
      if (!out.equals(expected)) fail(cut, 'not a prefix of the original apart from the last page flags/CRC');
      if (lp.granule !== origPage.granule) fail(cut, 'last page granule changed');
      if (parsed.packets.length !== refPackets(op.slice(0, last + 1)).length - 2) fail(cut, 'packet count is not that of the kept pages');
    }
  }
  const failures = [...byReason].map(([why, e]) => `${why}: ${e.n} cut(s), ${e.first}..${e.last}`);
  t.same(failures, [], `every cut from 0 to ${bytes.length} repairs to a valid file`);
  t.equal(rebuiltCount, firstAudioEnd, `cuts 0..${firstAudioEnd - 1} (no whole audio page) are rebuilt`);
  t.ok(repairOggOpus(bytes, fallback).bytes.equals(bytes), 'the whole file is left as it is');

  // A sample of 20 cuts through opus-tools: opusinfo without warnings, opusdec to the stated length.
  const sample = new Set<number>([0, 10, 27, op[0]!.length, op[0]!.length + 20, headerEnd - 1, headerEnd, headerEnd + 30, firstAudioEnd - 1, firstAudioEnd, firstAudioEnd + 1]);
  for (let i = 1; sample.size < 19; i++) sample.add(Math.floor((i * bytes.length) / 10) - 3);
  sample.add(bytes.length - 1);
  const problems: string[] = [];
  for (const cut of [...sample].sort((a, b) => a - b)) {
    const r = repairOggOpus(bytes.subarray(0, cut), fallback);
    const path = tmp(`repaired-${cut}.opus`);
    writeFileSync(path, r.bytes);
    const info = opusinfo(path);
    if (info.status !== 0 || info.problems.length > 0) problems.push(`cut ${cut} (${r.rebuilt ? 'rebuilt' : 'cut'}): status ${info.status}: ${info.problems.join(' | ')}`);
    const pcm = opusdec(path, tmp(`repaired-${cut}.wav`), 8000);
    const want = Number(r.finalGranule - 312n) / 6;
    if (pcm.samples.length !== want) problems.push(`cut ${cut}: opusdec gives ${pcm.samples.length} samples, granule says ${want}`);
    const ours = decodeOggOpus(r.bytes, 8000);
    if (ours.samples.length !== want) problems.push(`cut ${cut}: decodeOggOpus gives ${ours.samples.length} samples, granule says ${want}`);
  }
  t.equal(sample.size, 20, '20 cuts sampled');
  t.same(problems, [], 'opusinfo accepts the repaired files without warnings; decoders agree with the granule');
});

// ---------------------------------------------------------------------------------------------------
// 5. The held-back end: a stop that arrives late

t.test('a late stop inside the hold window cuts exactly; one far behind is clamped', async (t) => {
  const RATE = 8000;
  const START = 800;
  const TOTAL = 24000; // 3 s in the ring
  const HOLD_MS = 300; // 2400 frames
  const audio = framesOf(CONGRATS, RATE, 1, TOTAL);

  /** A session on 3 s of speech, pumped every 20 ms: packets older than the hold are already in pages. */
  const running = (name: string) => {
    const ring = new LineRing(TOTAL + RATE, 1);
    ring.writeFrom(audio, 0, START, 1, [0]);
    const path = tmp(`${name}.opus`);
    const session = new EncodeSession({
      id: name,
      path,
      ring: ring.handle(),
      sampleRate: RATE,
      startFrame: START,
      bitrate: 16000,
      complexity: 5,
      pageFlushMs: 0,
      holdMs: HOLD_MS,
      serial: 42,
    });
    for (let f = START; f < TOTAL; f += 160) {
      ring.writeFrom(audio, f, 160, 1, [0]);
      if (session.pump() !== null) throw new Error('result before stop');
    }
    return { session, path };
  };
  // Written so far: packets ending at or before 24000 - 2400 = 21600, i.e. (21600 - 800) / 160 = 130 packets.
  const WRITTEN_GRANULE = 130n * 960n; // 124800

  t.test('the file before the stop holds what is older than holdMs', async (t) => {
    const { session, path } = running('before-stop');
    const pages = refParsePages(readFileSync(path));
    t.ok(pages.length > 3, `${pages.length} pages already written`);
    t.equal(pages[pages.length - 1]!.granule, WRITTEN_GRANULE, 'last written page: 130 packets (granule 124800)');
    t.equal(refPackets(pages).length - 2, 130, '130 packets written');
    t.ok(pages.every((p) => (p.flags & FLAG_EOS) === 0), 'no EOS yet');
    session.stop(TOTAL, true);
    t.ok(session.pump(), 'finishes');
  });

  for (const end of [22000, 21601, 21549]) {
    // end + 52 > 21600: the packet starting at 21600 is still held back and carries the end.
    t.test(`stop at ${end}, ${((TOTAL - end) / 8).toFixed(0)} ms in the past`, async (t) => {
      const { session, path } = running(`late-${end}`);
      session.stop(end);
      const result = session.pump();
      if (!result) throw new Error('no result although the ring holds the end and the lookahead');
      const want = 312n + BigInt(end - START) * 6n;
      t.equal(result.finalGranule, want.toString(), `final granule 312 + (${end} - ${START}) * 6 = ${want}`);
      t.equal(result.clampedEnd, false, 'not clamped');
      t.equal(result.frames, end - START, 'frames = end - start');
      const bytes = readFileSync(path);
      const pages = refParsePages(bytes);
      t.equal(pages[pages.length - 1]!.granule, want, 'last page granule');
      t.ok(pages[pages.length - 1]!.granule >= pages[pages.length - 2]!.granule, 'granule does not decrease');
      // Packets: ceil((end - start + 52) / 160).
      t.equal(refPackets(pages).length - 2, Math.ceil((end - START + 52) / 160), 'packets cover the end and the lookahead');
      checkOpusinfo(t, path);
      const dec = decodeOggOpus(bytes, RATE);
      t.equal(dec.samples.length, end - START, 'decodes to end - start samples');
      const sys = opusdec(path, tmp(`late-${end}.wav`), RATE);
      t.equal(sys.samples.length, end - START, 'opusdec: end - start samples');
      const src = audio.subarray(START, end);
      const best = bestLag(dec.samples, src, 150);
      t.ok(Math.abs(best.lag) <= 1 && best.r >= 0.8, `aligned with the source from startFrame (lag ${best.lag}, r = ${best.r.toFixed(3)})`);
    });
  }

  t.test('a stop far behind what was written is clamped', async (t) => {
    const { session, path } = running('clamped');
    const end = START + 8000; // 1 s into the recording, 1.6 s before what is already in pages
    session.stop(end);
    const result = session.pump();
    if (!result) throw new Error('no result');
    t.equal(result.clampedEnd, true, 'clampedEnd');
    t.equal(result.finalGranule, WRITTEN_GRANULE.toString(), 'ends where the written pages end (granule 124800)');
    t.equal(result.frames, (124800 - 312) / 6, 'frames = what the written pages hold');
    const bytes = readFileSync(path);
    const pages = refParsePages(bytes);
    t.equal(pages[pages.length - 1]!.granule, WRITTEN_GRANULE, 'last page granule');
    t.ok((pages[pages.length - 1]!.flags & FLAG_EOS) !== 0, 'EOS');
    t.doesNotThrow(() => readOggOpus(bytes), 'readOggOpus accepts it');
    checkOpusinfo(t, path);
    const dec = decodeOggOpus(bytes, RATE);
    t.equal(dec.samples.length, result.frames, 'decodeOggOpus length = result.frames');
    const sys = opusdec(path, tmp('clamped.wav'), RATE);
    t.equal(sys.samples.length, result.frames, 'opusdec length = result.frames');
  });
});

t.test('a stop ahead of the audio waits for the last whole frame', async (t) => {
  // end 8000: packets = ceil((8000 + 52) / 160) = 51, the last codes frames 8000..8159, so the ring
  // must hold 8160 frames before the recording can finish (without force).
  const audio = framesOf(CONGRATS, 8000, 1, 8400);
  const ring = new LineRing(10000, 1);
  const path = tmp('ahead.opus');
  const session = new EncodeSession({ id: 'ahead', path, ring: ring.handle(), sampleRate: 8000, startFrame: 0, bitrate: 16000, complexity: 5, pageFlushMs: 0, holdMs: 300, serial: 9 });
  ring.writeFrom(audio, 0, 4000, 1, [0]);
  t.equal(session.pump(), null, 'recording');
  session.stop(8000);
  const nulls: number[] = [];
  for (const upTo of [7999, 8000, 8051, 8052, 8159]) {
    ring.writeFrom(audio, ring.writePosition, upTo - ring.writePosition, 1, [0]);
    if (session.pump() === null) nulls.push(upTo);
  }
  t.same(nulls, [7999, 8000, 8051, 8052, 8159], 'no result while the last frame is incomplete');
  ring.writeFrom(audio, 8159, 1, 1, [0]);
  const result = session.pump();
  t.ok(result, 'result once the ring holds 8160 frames');
  t.equal(result?.finalGranule, '48312', 'granule 48312');
  const pages = refParsePages(readFileSync(path));
  t.equal(refPackets(pages).length - 2, 51, '51 packets');
  checkOpusinfo(t, path, 1);
});

t.test('force stop while the capture thread is still writing', async (t) => {
  // At shutdown CallManager.closeAll stops every recording with force at the ring's write position while
  // capture goes on, so the ring can grow between the moment pump() reads its write position and the
  // moment finish() reads it again. Simulated deterministically: the session's second read of
  // writePosition (the one in finish) happens after the capture thread appended one 20 ms chunk.
  const RATE = 8000;
  const tone = new Int16Array(9000);
  for (let i = 0; i < tone.length; i++) tone[i] = Math.round(8000 * Math.sin((2 * Math.PI * 440 * i) / RATE));
  const run = (concurrent: boolean) => {
    const ring = new LineRing(20000, 1);
    const path = tmp(`force-race-${concurrent}.opus`);
    const session = new EncodeSession({ id: 'race', path, ring: ring.handle(), sampleRate: RATE, startFrame: 0, bitrate: 16000, complexity: 5, pageFlushMs: 0, holdMs: 300, serial: 3 });
    ring.writeFrom(tone, 0, 8037, 1, [0]);
    if (session.pump() !== null) throw new Error('result before stop'); // encodes frames 0..7999
    const desc = Object.getOwnPropertyDescriptor(LineRing.prototype, 'writePosition')!;
    let reads = 0;
    if (concurrent) {
      Object.defineProperty(LineRing.prototype, 'writePosition', {
        configurable: true,
        get(this: LineRing) {
          if (this !== ring && ++reads === 2) ring.writeFrom(tone, 8037, 160, 1, [0]);
          return desc.get!.call(this);
        },
      });
    }
    let result;
    try {
      session.stop(8037, true);
      result = session.pump();
    } finally {
      Object.defineProperty(LineRing.prototype, 'writePosition', desc);
    }
    if (!result) throw new Error('no result');
    return { result, pcm: decodeOggOpus(readFileSync(path), RATE).samples };
  };
  const quiet = run(false);
  const racing = run(true);
  t.equal(racing.result.finalGranule, '48534', 'granule 312 + 8037 * 6');
  t.equal(racing.pcm.length, 8037, '8037 samples');
  // The last 37 frames (8000..8036) are a full-scale tone in the source: they must be in the file either way.
  const srcTail = rms(tone.subarray(8000, 8037));
  const quietTail = rms(quiet.pcm.subarray(8000, 8037));
  const racingTail = rms(racing.pcm.subarray(8000, 8037));
  t.ok(quietTail > 0.7 * srcTail, `no concurrent write: last 37 frames kept (rms ${quietTail.toFixed(0)} vs source ${srcTail.toFixed(0)})`);
  t.ok(racingTail > 0.7 * srcTail, `concurrent write: last 37 frames kept (rms ${racingTail.toFixed(0)} vs source ${srcTail.toFixed(0)})`);
});

// ---------------------------------------------------------------------------------------------------
// The muxer on its own: lacing and page splits by hand

class MemorySink {
  chunks: Buffer[] = [];
  write(b: Buffer): void {
    this.chunks.push(Buffer.from(b));
  }
  flush(): void {}
  close(): void {}
  get bytes(): Buffer {
    return Buffer.concat(this.chunks);
  }
}

t.test('OggOpusWriter: lacing and automatic page splits', async (t) => {
  const head: OpusHead = { channels: 2, preSkip: 312, inputSampleRate: 16000, outputGain: -256 };
  const sink = new MemorySink();
  const w = new OggOpusWriter(sink, head, 0xabcdef01);
  // 300 packets of 300 bytes: 2 lacing values each (255 + 45), so a page holds 127 of them (254 values;
  // a 128th would need 256). 127 + 127 go out on their own, 46 remain for the end-of-stream page.
  const packets: Buffer[] = [];
  for (let i = 0; i < 300; i++) {
    const p = Buffer.alloc(300);
    for (let j = 0; j < p.length; j++) p[j] = (i * 7 + j * 13) & 0xff;
    packets.push(p);
    w.addPacket(p, 960);
  }
  // Then sizes at the lacing edges, 20 ms each: 254 -> [254], 255 -> [255, 0], 510 -> [255, 255, 0], 1 -> [1].
  const edges = [254, 255, 510, 1].map((n, k) => Buffer.alloc(n, 0x41 + k));
  for (const p of edges) w.addPacket(p, 960);
  t.throws(() => w.finish(304n * 960n + 1n), RangeError, 'a final granule beyond the audio is refused');
  w.finish(304n * 960n - 500n);
  t.throws(() => w.addPacket(Buffer.alloc(3), 960), 'no packet after the end');
  const pages = refParsePages(sink.bytes);
  t.same(
    pages.map((p) => p.granule),
    [0n, 0n, 127n * 960n, 254n * 960n, 304n * 960n - 500n],
    'granules 0, 0, 121920, 243840, 291340',
  );
  t.same(
    pages.map((p) => p.lacing.length),
    [1, 1, 254, 254, 46 * 2 + 1 + 2 + 3 + 1],
    'lacing values per page',
  );
  t.same(pages[4]!.lacing.slice(-7), [254, 255, 0, 255, 255, 0, 1], 'edge sizes laced per RFC 3533');
  t.same(
    pages.map((p) => p.flags),
    [FLAG_BOS, 0, 0, 0, FLAG_EOS],
    'flags',
  );
  t.ok(pages.every((p) => refCrc(zeroedCrc(p.raw)) === p.storedCrc), 'CRCs');
  const all = refPackets(pages);
  t.same(refOpusHead(all[0]!), { version: 1, channels: 2, preSkip: 312, inputRate: 16000, gain: -256, mapping: 0 }, 'OpusHead');
  const audio = all.slice(2);
  t.equal(audio.length, 304, '304 packets back');
  t.ok(audio.every((p, i) => p.equals(i < 300 ? packets[i]! : edges[i - 300]!)), 'every packet back byte for byte');
  t.throws(() => new OggOpusWriter(new MemorySink(), head, 1).finish(0n), 'end of stream needs a packet');
});

t.test('readOggOpus refuses a damaged file', async (t) => {
  const audio = framesOf(CONGRATS, 8000, 1, 8400);
  const r = record({ name: 'damaged', rate: 8000, channels: 1, audio, end: 8000 });
  const pages = refParsePages(r.bytes);
  const bad = Buffer.from(r.bytes);
  const mid = pages[3]!.offset + 40;
  bad[mid] = bad[mid]! ^ 0x10;
  t.throws(() => readOggOpus(bad), /damaged at byte/, 'one flipped bit in page 3: CRC mismatch');
  // repair keeps the pages before the damaged one.
  const fixed = repairOggOpus(bad, { channels: 1, preSkip: 312, inputSampleRate: 8000, outputGain: 0 });
  t.equal(fixed.bytes.length, pages[3]!.offset, 'repair keeps pages 0..2');
  t.equal(fixed.finalGranule, pages[2]!.granule, 'and their granule');
  t.equal(readOggOpus(fixed.bytes).endOfStream, true, 'EOS');
});

t.test('repair of a 2-channel file cut in its first audio page', async (t) => {
  const audio = framesOf(DIALOGUE, 8000, 2, 8400, 120000);
  const r = record({ name: 'repair-stereo', rate: 8000, channels: 2, audio, end: 8000 });
  const pages = refParsePages(r.bytes);
  const fallback: OpusHead = { channels: 2, preSkip: 312, inputSampleRate: 8000, outputGain: 0 };
  for (const cut of [5, pages[0]!.length + 3, pages[2]!.offset + 10, pages[3]!.offset + 10]) {
    const out = repairOggOpus(r.bytes.subarray(0, cut), fallback);
    const path = tmp(`repair-stereo-${cut}.opus`);
    writeFileSync(path, out.bytes);
    const parsed = readOggOpus(out.bytes);
    t.equal(parsed.head.channels, 2, `cut ${cut}: 2 channels`);
    t.ok(parsed.packets.every((p) => ((p[0]! >> 2) & 1) === 1), `cut ${cut}: stereo TOC on every packet`);
    const info = opusinfo(path);
    t.same(info.problems, [], `cut ${cut}: opusinfo has no warnings`);
    const pcm = opusdec(path, tmp(`repair-stereo-${cut}.wav`), 8000);
    t.equal(pcm.channels, 2, `cut ${cut}: opusdec decodes 2 channels`);
    t.equal(pcm.samples.length / 2, Number(out.finalGranule - 312n) / 6, `cut ${cut}: opusdec length matches the granule`);
  }
});
