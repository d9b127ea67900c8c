/**
 * The sealed audio stream (daemon/store/sealed): SealSink, openSealed, repairSealed, and EncodeSession with
 * a key. Expected values come from an independent reading of the format (helpers/sealedRef.ts: own segment
 * walker, own AES-256-GCM with the nonce built by hand) and from an independent Ogg parser and opus-tools
 * (helpers/oggTools.ts).
 *
 * Arithmetic used throughout:
 * - header: 32 bytes; a segment holding p plain bytes takes 1 + 4 + p + 16 = p + 21 bytes; the final
 *   segment is empty: 21 bytes;
 * - segment k (counting from 0) of a stream written by SealSink is sealed with counter k;
 * - a repair segment after k intact segments (counters 0..k-1) is sealed with counter k + 1 (the torn
 *   segment's counter k is skipped), the final one after it with k + 2;
 * - an 8 kHz recording pumped every 800 frames (100 ms) with holdMs 300 and pageFlushMs 0 writes one page
 *   (one segment) per pump once 2400 frames are held: segment 0 holds OpusHead and OpusTags.
 */
import t from 'tap';
import { createHash, randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { EncodeSession } from '../daemon/encode/EncodeSession.js';
import type { EncodeResult } from '../daemon/encode/messages.js';
import { LineRing } from '../daemon/ring/LineRing.js';
import { readWav } from '../daemon/capture/wav.js';
import { readOggOpus } from '../daemon/store/ogg/OggReader.js';
import type { OpusHead } from '../daemon/store/ogg/opusHeaders.js';
import { SealSink } from '../daemon/store/sealed/SealSink.js';
import { openSealed, SealedStreamError, type OpenedStream } from '../daemon/store/sealed/openSealed.js';
import { repairSealed, type SealedRepair } from '../daemon/store/sealed/repairSealed.js';
import { bundledSpeech } from './helpers/speech.js';
import { FLAG_BOS, FLAG_EOS, opusdec, opusinfo, refCrc, refOpusHead, refPackets, refParsePages, requireOpusTools, zeroedCrc, type RefPage } from './helpers/oggTools.js';
import { gcmOpen, MemorySink, prng, randomPlain, rawSegments, REF_FINAL, REF_HEADER, REF_REPAIR, REF_SEG_HEAD, REF_TAG, type RawSegment } from './helpers/sealedRef.js';

requireOpusTools();

type TT = Parameters<Parameters<typeof t.test>[0]>[0];

const dir = mkdtempSync(join(tmpdir(), 'callrec-sealed-test-'));
t.teardown(() => rmSync(dir, { recursive: true, force: true }));
let fileNo = 0;
const tmp = (name: string) => join(dir, `${++fileNo}-${name}`);

const CONGRATS = bundledSpeech('en-allison-demo-congrats.wav'); // 8 kHz mono
const SEGMENT_OVERHEAD = REF_SEG_HEAD + REF_TAG; // 21

/** What openSealed throws, or null when it returns. */
function sealedError(fn: () => unknown): SealedStreamError | Error | null {
  try {
    fn();
    return null;
  } catch (e) {
    return e as Error;
  }
}

/** Failures of a many-case loop grouped by reason: how many cases, the first and last of them. */
class Tally {
  private readonly m = new Map<string, { n: number; first: string; last: string }>();
  add(where: string | number, why: string): void {
    const e = this.m.get(why);
    if (e) {
      e.n++;
      e.last = String(where);
    } else this.m.set(why, { n: 1, first: String(where), last: String(where) });
  }
  get report(): Record<string, { n: number; first: string; last: string }> {
    return Object.fromEntries(this.m);
  }
}

/** Checks the 32 header bytes one by one, from the documented layout. */
function checkHeaderBytes(t: TT, file: Buffer): Buffer {
  t.equal(file.toString('latin1', 0, 8), 'CRECAUD1', 'bytes 0..7: magic CRECAUD1');
  t.equal(file[8], 1, 'byte 8: version 1');
  t.same([...file.subarray(9, 12)], [0, 0, 0], 'bytes 9..11: reserved, zero');
  t.same([...file.subarray(19, 32)], new Array(13).fill(0), 'bytes 19..31: reserved, zero');
  const prefix = Buffer.from(file.subarray(12, 19));
  t.notSame([...prefix], [0, 0, 0, 0, 0, 0, 0], 'bytes 12..18: a nonce prefix (not all zero)');
  return prefix;
}

/** Seals `plains` as one flush each, then closes: what a chain ending in memory holds. */
function sealFlushes(key: Buffer, plains: Buffer[]): Buffer {
  const mem = new MemorySink();
  const s = new SealSink(mem, key);
  for (const p of plains) {
    s.write(p);
    s.flush();
  }
  s.close();
  return mem.bytes;
}

// ---------------------------------------------------------------------------------------------------
// 1. Round trip and the seek index

t.test('round trip: plain chunks with flushes in between, segments and seek index by hand', async (t) => {
  const rand = prng(0x5ea1ed01);
  const key = randomBytes(32);
  const mem = new MemorySink();
  const sink = new SealSink(mem, key);
  t.equal(mem.bytes.length, REF_HEADER, 'the header is written at once, before any audio');
  const prefix = checkHeaderBytes(t, mem.bytes);

  // Each group is written as chunks, then flushed; empty groups are flushes with nothing written, which
  // must not make a segment.
  const groups: number[][] = [[10, 0, 300], [], [1], [5000, 70000], [], [], [17, 17, 17], [4096], [255, 256, 257], [], [2]];
  const segPlains: Buffer[] = [];
  let flushes = 0;
  for (const g of groups) {
    const chunks = g.map((n) => randomPlain(rand, n));
    const plain = Buffer.concat(chunks); // a copy
    for (const c of chunks) sink.write(c);
    // Written buffers are copied: changing them after write does not change what is sealed.
    for (const c of chunks) c.fill(0xee);
    sink.flush();
    flushes++;
    t.equal(mem.flushes, flushes, `flush ${flushes} reaches the next stage`);
    if (plain.length > 0) segPlains.push(plain);
  }
  t.equal(mem.closes, 0, 'not closed by flushes');
  sink.close();
  t.equal(mem.closes, 1, 'close reaches the next stage');
  sink.close();
  t.equal(mem.closes, 1, 'a second close does nothing');
  t.throws(() => sink.write(Buffer.from([1])), 'write after close throws');
  const allPlain = Buffer.concat(segPlains);

  const file = mem.bytes;
  const nonEmpty = segPlains.length;
  t.equal(nonEmpty, 7, '7 flushes had something written');
  const wantSize = REF_HEADER + segPlains.reduce((n, p) => n + p.length + SEGMENT_OVERHEAD, 0) + SEGMENT_OVERHEAD;
  t.equal(file.length, wantSize, `stored size 32 + sum(p + 21) + 21 = ${wantSize}`);

  const opened = openSealed(file, key);
  t.ok(opened.plain.equals(allPlain), 'openSealed returns exactly the concatenated plain bytes');
  t.equal(opened.complete, true, 'complete');
  t.equal(opened.segments.length, nonEmpty + 1, 'one segment per non-empty flush plus the final one');
  t.equal(opened.nextCounter, nonEmpty + 1, 'nextCounter after the final segment');
  t.ok(opened.head.equals(file.subarray(0, 32)), 'head is the 32 header bytes');

  // Segment table by hand.
  const want: Array<{ offset: number; length: number; plainOffset: number; plainLength: number; flags: number }> = [];
  let off = REF_HEADER;
  let poff = 0;
  for (const p of segPlains) {
    want.push({ offset: off, length: p.length + SEGMENT_OVERHEAD, plainOffset: poff, plainLength: p.length, flags: 0 });
    off += p.length + SEGMENT_OVERHEAD;
    poff += p.length;
  }
  want.push({ offset: off, length: SEGMENT_OVERHEAD, plainOffset: poff, plainLength: 0, flags: REF_FINAL });
  t.same(opened.segments, want, 'segment offsets, lengths, plain offsets and flags by hand');

  // The seek index: segment k alone, from its offset and length, with our own AES-GCM and nonce.
  const head = file.subarray(0, REF_HEADER);
  const bad: string[] = [];
  opened.segments.forEach((s, k) => {
    const seg = file.subarray(s.offset, s.offset + s.length);
    if (seg.readUInt32BE(1) !== s.length - REF_SEG_HEAD) bad.push(`${k}: length field`);
    const body = seg.subarray(REF_SEG_HEAD);
    const plain = gcmOpen(key, head, k, seg[0]!, body);
    const expect = k < nonEmpty ? segPlains[k]! : Buffer.alloc(0);
    if (!plain || !plain.equals(expect)) bad.push(`${k}: own decryption with counter ${k}`);
    if (plain && !plain.equals(opened.plain.subarray(s.plainOffset, s.plainOffset + s.plainLength))) bad.push(`${k}: plainOffset/plainLength`);
    if (gcmOpen(key, head, k + 1, seg[0]!, body) !== null || (k > 0 && gcmOpen(key, head, k - 1, seg[0]!, body) !== null)) bad.push(`${k}: opens with another counter`);
    if (gcmOpen(key, head, k, seg[0]! ^ REF_FINAL, body) !== null) bad.push(`${k}: opens with other flags`);
    // GCM: ciphertext as long as the plain, not the plain itself.
    if (expect.length >= 16 && body.subarray(0, expect.length).equals(expect)) bad.push(`${k}: ciphertext equals the plain`);
  });
  t.same(bad, [], 'every segment decrypts alone from its offset/length, nonce = prefix | k | flags');
  t.equal(file.subarray(12, 19).equals(prefix), true, 'prefix unchanged');

  // A second sink under the same key draws another prefix, so the same plain seals differently.
  const other = sealFlushes(key, segPlains);
  t.notOk(other.subarray(12, 19).equals(prefix), 'another stream has another nonce prefix');
  t.ok(openSealed(other, key).plain.equals(allPlain), 'and opens to the same plain');
  t.notOk(other.subarray(REF_HEADER + REF_SEG_HEAD, REF_HEADER + REF_SEG_HEAD + 32).equals(file.subarray(REF_HEADER + REF_SEG_HEAD, REF_HEADER + REF_SEG_HEAD + 32)), 'with other ciphertext');
});

t.test('an empty stream (closed without audio) is the header and the final segment', async (t) => {
  const key = randomBytes(32);
  const file = sealFlushes(key, []);
  t.equal(file.length, 32 + 21, '53 bytes');
  checkHeaderBytes(t, file);
  t.equal(file[32], REF_FINAL, 'final flag');
  t.equal(file.readUInt32BE(33), 16, 'length 16: the tag alone');
  t.same(gcmOpen(key, file.subarray(0, 32), 0, REF_FINAL, file.subarray(37)), Buffer.alloc(0), 'final segment opens with counter 0');
  const o = openSealed(file, key);
  t.same({ plain: o.plain.length, complete: o.complete, n: o.segments.length }, { plain: 0, complete: true, n: 1 }, 'opens: empty and complete');
});

// ---------------------------------------------------------------------------------------------------
// 2. Tampering and truncation

/** A small sealed file: segments of 7, 12, 1 and 20 bytes, then the final one. */
const SMALL_PLAINS = [7, 12, 1, 20].map((n, i) => randomPlain(prng(100 + i), n));
const SMALL_PLAIN = Buffer.concat(SMALL_PLAINS);

t.test('every single-byte change of a small sealed file is detected', async (t) => {
  const key = randomBytes(32);
  const file = sealFlushes(key, SMALL_PLAINS);
  const segs = rawSegments(file);
  t.equal(segs.length, 5, '4 segments + final');
  t.equal(file.length, 32 + (7 + 12 + 1 + 20) + 5 * 21, `size ${32 + 40 + 105}`);
  /** Index of the segment byte i belongs to (-1: header). */
  const segOf = (i: number) => (i < REF_HEADER ? -1 : segs.findIndex((s) => i >= s.offset && i < s.offset + s.length));
  const tally = new Tally();
  const magicNotHeader = new Tally();
  let tried = 0;
  for (let i = 0; i < file.length; i++) {
    // Every single-bit flip and the all-bits flip of byte i.
    for (const mask of [1, 2, 4, 8, 16, 32, 64, 128, 255]) {
      tried++;
      const bad = Buffer.from(file);
      bad[i] = bad[i]! ^ mask;
      const where = `byte ${i} ^ 0x${mask.toString(16)}`;
      const e = sealedError(() => openSealed(bad, key));
      if (e === null) {
        tally.add(where, 'openSealed returned');
        continue;
      }
      if (!(e instanceof SealedStreamError)) {
        tally.add(where, `threw ${e.name} instead of SealedStreamError`);
        continue;
      }
      const k = segOf(i);
      if (k === -1) {
        if (e.code !== 'BAD_HEADER' && e.code !== 'BAD_SEGMENT') tally.add(where, `header byte: code ${e.code}`);
        if (e.code === 'BAD_SEGMENT' && (e.segment !== 0 || !e.message.includes('segment 0'))) tally.add(where, `header byte (AAD): segment ${e.segment}, want 0`);
        // Magic and version are checked as such: "not a callrec sealed stream".
        if (i <= 8 && e.code !== 'BAD_HEADER') magicNotHeader.add(where, `magic/version byte: code ${e.code}, want BAD_HEADER`);
      } else {
        if (e.code !== 'BAD_SEGMENT' && e.code !== 'TRUNCATED') tally.add(where, `segment byte: code ${e.code}`);
        // A changed length field that points past the end reads as a cut; either way it names segment k.
        if (e.segment !== k || !e.message.includes(`segment ${k}`)) tally.add(where, `names segment ${e.segment} ("${e.message}"), want ${k}`);
        if (e.code === 'TRUNCATED' && !(i >= segs[k]!.offset + 1 && i < segs[k]!.offset + 5)) tally.add(where, 'TRUNCATED for a byte outside a length field');
      }
      // Repair mode never reports the stream complete, and keeps only the segments before the damage.
      const r = sealedError(() => {
        const o = openSealed(bad, key, true);
        if (o.complete) throw new Error('complete');
        const before = Buffer.concat(SMALL_PLAINS.slice(0, Math.max(0, k)));
        if (!o.plain.equals(before)) throw new Error('plain');
      });
      if (r && !(k === -1 && i <= 8 && r instanceof SealedStreamError)) tally.add(where, `allowIncomplete: ${r.message}`);
    }
  }
  t.equal(tried, file.length * 9, `${tried} altered files`);
  t.same(tally.report, {}, 'every one throws SealedStreamError (header: BAD_HEADER or BAD_SEGMENT at 0) naming the altered segment');
  t.same(magicNotHeader.report, {}, 'every change of the magic or version is BAD_HEADER');
});

t.test('moved, swapped, dropped, duplicated, foreign and trailing segments are detected', async (t) => {
  const key = randomBytes(32);
  const file = sealFlushes(key, SMALL_PLAINS);
  const twin = sealFlushes(key, SMALL_PLAINS); // same key, same plain, another prefix
  t.notOk(twin.subarray(12, 19).equals(file.subarray(12, 19)), 'the twin has another prefix');
  const head = file.subarray(0, 32);
  const seg = (f: Buffer) => rawSegments(f).map((s) => f.subarray(s.offset, s.offset + s.length));
  const s = seg(file);
  const o = seg(twin);
  const build = (...parts: Buffer[]) => Buffer.concat([head, ...parts]);
  t.ok(openSealed(build(...s), key).plain.equals(SMALL_PLAIN), 'the parts rebuild the original');

  const cases: Array<[string, Buffer, string, number]> = [
    ['segments 1 and 2 swapped', build(s[0]!, s[2]!, s[1]!, s[3]!, s[4]!), 'BAD_SEGMENT', 1],
    ['segments 0 and 1 swapped', build(s[1]!, s[0]!, s[2]!, s[3]!, s[4]!), 'BAD_SEGMENT', 0],
    ['middle segment 2 dropped', build(s[0]!, s[1]!, s[3]!, s[4]!), 'BAD_SEGMENT', 2],
    ['segment 0 dropped', build(s[1]!, s[2]!, s[3]!, s[4]!), 'BAD_SEGMENT', 0],
    ['last data segment 3 dropped', build(s[0]!, s[1]!, s[2]!, s[4]!), 'BAD_SEGMENT', 3],
    ['segment 1 duplicated', build(s[0]!, s[1]!, s[1]!, s[2]!, s[3]!, s[4]!), 'BAD_SEGMENT', 2],
    ['segment 3 repeated at the end, before the final one', build(s[0]!, s[1]!, s[2]!, s[3]!, s[3]!, s[4]!), 'BAD_SEGMENT', 4],
    ['final segment moved after segment 1', build(s[0]!, s[1]!, s[4]!, s[2]!, s[3]!), 'BAD_SEGMENT', 2],
    ['final segment moved first', build(s[4]!, s[0]!, s[1]!, s[2]!, s[3]!), 'BAD_SEGMENT', 0],
    ['final segment twice', build(...s, s[4]!), 'TRAILING_DATA', 5],
    ['garbage after the final segment', build(...s, Buffer.from('garbage')), 'TRAILING_DATA', 5],
    ['one zero byte after the final segment', build(...s, Buffer.alloc(1)), 'TRAILING_DATA', 5],
    ['a whole valid segment after the final one', build(...s, s[2]!), 'TRAILING_DATA', 5],
    ['segment 2 from another file (same key, same plain, other prefix)', build(s[0]!, s[1]!, o[2]!, s[3]!, s[4]!), 'BAD_SEGMENT', 2],
    ['final segment from another file', build(s[0]!, s[1]!, s[2]!, s[3]!, o[4]!), 'BAD_SEGMENT', 4],
    ['the other file\'s header on this file\'s segments', Buffer.concat([twin.subarray(0, 32), ...s]), 'BAD_SEGMENT', 0],
    ['no final segment (cut at a segment boundary)', build(s[0]!, s[1]!, s[2]!, s[3]!), 'TRUNCATED', 4],
    ['segment 2 relabelled as repair', build(s[0]!, s[1]!, Buffer.concat([Buffer.from([REF_REPAIR]), s[2]!.subarray(1)]), s[3]!, s[4]!), 'BAD_SEGMENT', 2],
    ['segment 3 relabelled final, real final dropped', build(s[0]!, s[1]!, s[2]!, Buffer.concat([Buffer.from([REF_FINAL]), s[3]!.subarray(1)])), 'BAD_SEGMENT', 3],
    ['unknown flag bit', build(s[0]!, Buffer.concat([Buffer.from([0x80]), s[1]!.subarray(1)]), s[2]!, s[3]!, s[4]!), 'BAD_SEGMENT', 1],
  ];
  for (const [name, bytes, code, index] of cases) {
    const e = sealedError(() => openSealed(bytes, key));
    if (!(e instanceof SealedStreamError)) {
      t.fail(`${name}: ${e ? `threw ${e.name}: ${e.message}` : 'opened'}`);
      continue;
    }
    t.same({ code: e.code, segment: e.segment, named: e.message.includes(`segment ${index}`) }, { code, segment: index, named: true }, `${name}: ${code} at segment ${index} ("${e.message}")`);
  }
});

t.test('truncation at every byte offset', async (t) => {
  const key = randomBytes(32);
  const file = sealFlushes(key, SMALL_PLAINS);
  const segs = rawSegments(file);
  const tally = new Tally();
  for (let cut = 0; cut < file.length; cut++) {
    const part = file.subarray(0, cut);
    const e = sealedError(() => openSealed(part, key));
    const whole = segs.filter((s) => s.offset + s.length <= cut).length;
    if (!(e instanceof SealedStreamError)) tally.add(cut, e ? `threw ${e.name}` : 'strict open returned plain');
    else if (cut < 32 ? e.code !== 'BAD_HEADER' : e.code !== 'TRUNCATED' || e.segment !== whole) tally.add(cut, `strict: ${e.code} at ${e.segment}`);
    if (cut < 32) {
      // Not even the header: nothing to stop at (repairSealed catches this and rebuilds).
      const e2 = sealedError(() => openSealed(part, key, true));
      if (!(e2 instanceof SealedStreamError) || e2.code !== 'BAD_HEADER') tally.add(cut, 'allowIncomplete inside the header: not BAD_HEADER');
      continue;
    }
    const o = openSealed(part, key, true);
    const want = Buffer.concat(SMALL_PLAINS.slice(0, Math.min(whole, 4)));
    if (!o.plain.equals(want)) tally.add(cut, 'allowIncomplete: plain is not the whole segments before the cut');
    if (o.complete) tally.add(cut, 'allowIncomplete: complete');
    if (o.segments.length !== whole || o.nextCounter !== whole) tally.add(cut, 'allowIncomplete: segment count / nextCounter');
  }
  t.same(tally.report, {}, `${file.length} cuts: strict open throws, allowIncomplete returns the whole segments before the cut`);
  t.ok(openSealed(file, key).complete, 'the uncut file opens');
});

// ---------------------------------------------------------------------------------------------------
// 3. Wrong key

t.test('a wrong key fails', async (t) => {
  const key = randomBytes(32);
  const file = sealFlushes(key, SMALL_PLAINS);
  const oneBit = Buffer.from(key);
  oneBit[31] = oneBit[31]! ^ 1;
  for (const [name, k] of [['random key', randomBytes(32)], ['key with one bit changed', oneBit]] as const) {
    const e = sealedError(() => openSealed(file, k));
    t.ok(e instanceof SealedStreamError && e.code === 'BAD_SEGMENT' && e.segment === 0, `${name}: BAD_SEGMENT at segment 0`);
    const o = openSealed(file, k, true);
    t.same({ plain: o.plain.length, complete: o.complete, segments: o.segments.length }, { plain: 0, complete: false, segments: 0 }, `${name}: allowIncomplete yields nothing`);
  }
});

// ---------------------------------------------------------------------------------------------------
// 4 and 5. EncodeSession with a key, repair

const RATE = 8000;
const TOTAL = 24000; // 3 s
const SERIAL = 0x5ea1ed;
const FALLBACK: OpusHead = { channels: 1, preSkip: 312, inputSampleRate: RATE, outputGain: 0 };

interface Session {
  session: EncodeSession;
  path: string;
  ring: LineRing;
  audio: Int16Array;
}

/** 3 s of speech into a keyed EncodeSession, a pump after every 100 ms written into the ring; not stopped. */
function running(name: string, key: Buffer): Session {
  const pcm = readWav(CONGRATS);
  if (pcm.sampleRate !== RATE || pcm.channels !== 1 || pcm.samples.length < TOTAL + 800) throw new Error(`${CONGRATS}: unexpected format`);
  const audio = pcm.samples.subarray(0, TOTAL + 800);
  const ring = new LineRing(TOTAL + RATE, 1);
  const path = tmp(`${name}.sealed`);
  const session = new EncodeSession({
    id: name,
    path,
    ring: ring.handle(),
    sampleRate: RATE,
    startFrame: 0,
    bitrate: 16000,
    complexity: 5,
    pageFlushMs: 0,
    holdMs: 300,
    serial: SERIAL,
    key: new Uint8Array(key),
  });
  for (let f = 0; f < TOTAL; f += 800) {
    ring.writeFrom(audio, f, 800, 1, [0]);
    if (session.pump() !== null) throw new Error('result before stop');
  }
  return { session, path, ring, audio };
}

function finishSession(s: Session): EncodeResult {
  s.ring.writeFrom(s.audio, TOTAL, 800, 1, [0]); // the encoder's lookahead past the end
  s.session.stop(TOTAL);
  const r = s.session.pump();
  if (!r) throw new Error('no result after stop');
  return r;
}

/** Decrypts every segment of a stream written by SealSink (counter = index) with our own code. */
function ownPlains(file: Buffer, key: Buffer): { segs: RawSegment[]; plains: Buffer[] } {
  const segs = rawSegments(file);
  const head = file.subarray(0, 32);
  const plains = segs.map((s, k) => {
    const p = gcmOpen(key, head, k, s.flags, s.body);
    if (!p) throw new Error(`own decryption of segment ${k} failed`);
    return p;
  });
  return { segs, plains };
}

/** Structural Ogg checks of a plain stream: whole pages, valid CRCs, one serial, sequence 0..n-1, BOS first, EOS last only. */
function oggProblems(plain: Buffer): string[] {
  let pages: RefPage[];
  try {
    pages = refParsePages(plain);
  } catch (e) {
    return [`pages: ${(e as Error).message}`];
  }
  const p: string[] = [];
  if (pages.length < 3) p.push(`${pages.length} pages`);
  if (pages.some((pg) => refCrc(zeroedCrc(pg.raw)) !== pg.storedCrc)) p.push('page CRC');
  if (pages.some((pg) => pg.serial !== pages[0]!.serial)) p.push('serials differ');
  if (pages.some((pg, i) => pg.sequence !== i)) p.push('page sequence not 0..n-1');
  if (pages.some((pg, i) => ((pg.flags & FLAG_BOS) !== 0) !== (i === 0))) p.push('BOS not on the first page only');
  const eos = pages.flatMap((pg, i) => ((pg.flags & FLAG_EOS) !== 0 ? [i] : []));
  if (eos.length !== 1 || eos[0] !== pages.length - 1) p.push(`EOS on pages [${eos.join(',')}] of ${pages.length}`);
  if (pages.some((pg, i) => i > 0 && pg.granule < pages[i - 1]!.granule)) p.push('granule decreases');
  try {
    const r = readOggOpus(plain);
    if (!r.endOfStream) p.push('readOggOpus: no end of stream');
  } catch (e) {
    p.push(`readOggOpus: ${(e as Error).message}`);
  }
  return p;
}

/** opusinfo on a plain stream; with `granule`, also its playback length and opusdec's sample count at 8 kHz. */
function checkOpusinfo(t: TT, plain: Buffer, name: string, granule?: bigint): void {
  const path = tmp(`${name}.opus`);
  writeFileSync(path, plain);
  const info = opusinfo(path);
  t.equal(info.status, 0, `${name}: opusinfo exits 0`);
  t.same(info.problems, [], `${name}: opusinfo reports no problem`);
  if (info.problems.length > 0 || info.status !== 0) t.comment(info.output);
  if (granule === undefined) return;
  // opusinfo prints the length truncated to the millisecond.
  const seconds = Number(granule - 312n) / 48000;
  t.ok(info.playbackS !== null && Math.abs(info.playbackS - seconds) < 0.001, `${name}: opusinfo playback ${info.playbackS} s ~ (${granule} - 312) / 48000 = ${seconds} s`);
  const dec = opusdec(path, tmp(`${name}.wav`), RATE);
  t.equal(dec.samples.length, Number(granule - 312n) / 6, `${name}: opusdec decodes (${granule} - 312) / 6 samples at 8 kHz`);
}

/**
 * Checks one repair of `orig` cut at `cut` against what we work out ourselves. Returns the problems
 * (empty when right) and which kind of repair it should have been.
 */
function checkRepair(orig: Buffer, segs: RawSegment[], plains: Buffer[], key: Buffer, cut: number, r: SealedRepair): { kind: 'complete' | 'appended' | 'rebuilt'; problems: string[] } {
  const p: string[] = [];
  const whole = cut < 32 ? 0 : segs.filter((s) => s.offset + s.length <= cut).length;
  const intactPlain = Buffer.concat(plains.slice(0, whole));
  const intactPages = refParsePages(intactPlain);
  const origPrefix = orig.subarray(12, 19);
  const completeInput = whole > 0 && (segs[whole - 1]!.flags & REF_FINAL) !== 0;

  // Whatever happened, the result opens, complete, and its plain is what repair says.
  let opened: OpenedStream | null = null;
  try {
    opened = openSealed(r.stored, key);
    if (!opened.complete) p.push('result not complete');
    if (!opened.plain.equals(r.plain)) p.push('result plain differs from r.plain');
  } catch (e) {
    p.push(`result does not open: ${(e as Error).message}`);
  }
  p.push(...oggProblems(r.plain).map((x) => `ogg: ${x}`));

  if (completeInput) {
    if (!r.stored.equals(orig.subarray(0, cut))) p.push('complete input changed');
    return { kind: 'complete', problems: p };
  }

  if (intactPages.length < 3) {
    // Rebuilt: new prefix, segment 0 = the rebuilt plain, segment 1 = final.
    if (r.stored.toString('latin1', 0, 8) !== 'CRECAUD1' || r.stored[8] !== 1) p.push('rebuilt: header magic/version');
    if (r.stored.subarray(12, 19).equals(origPrefix)) p.push('rebuilt: same nonce prefix as the original (counter 0 reused)');
    const rs = rawSegments(r.stored);
    const rh = r.stored.subarray(0, 32);
    if (rs.length !== 2 || rs[0]!.flags !== 0 || rs[1]!.flags !== REF_FINAL || rs[1]!.length !== 21) p.push('rebuilt: not one data segment + final');
    else {
      if (!gcmOpen(key, rh, 0, 0, rs[0]!.body)?.equals(r.plain)) p.push('rebuilt: segment 0 (counter 0) does not hold the plain');
      if (gcmOpen(key, rh, 1, REF_FINAL, rs[1]!.body)?.length !== 0) p.push('rebuilt: final segment not counter 1');
    }
    if (r.cutBytes !== cut) p.push(`rebuilt: cutBytes ${r.cutBytes}, want ${cut}`);
    if (r.finalGranule !== 960n) p.push(`rebuilt: finalGranule ${r.finalGranule}`);
    try {
      const pages = refParsePages(r.plain);
      const packets = refPackets(pages);
      if (pages.length !== 3) p.push(`rebuilt: ${pages.length} pages`);
      const head = refOpusHead(packets[0]!);
      if (head.channels !== 1 || head.preSkip !== 312 || head.inputRate !== RATE) p.push('rebuilt: OpusHead');
      if (packets.length !== 3 || !packets[2]!.equals(Buffer.from([0x08]))) p.push('rebuilt: one TOC-only packet');
      if (pages[2]!.granule !== 960n) p.push('rebuilt: EOS granule');
      if (intactPages.length === 2) {
        // The header pages survived: they are kept as they were (same serial, same OpusHead and OpusTags).
        if (!r.plain.subarray(0, intactPlain.length).equals(intactPlain)) p.push('rebuilt: surviving header pages not kept');
      } else if (pages[0]!.serial !== 1) p.push(`rebuilt from nothing: serial ${pages[0]!.serial}`);
    } catch (e) {
      p.push(`rebuilt: ${(e as Error).message}`);
    }
    return { kind: 'rebuilt', problems: p };
  }

  // Appended: the intact segments byte for byte, a repair segment (counter whole + 1), the final one (whole + 2).
  const keepEnd = segs[whole - 1]!.offset + segs[whole - 1]!.length;
  if (!r.stored.subarray(0, keepEnd).equals(orig.subarray(0, keepEnd))) p.push('intact segments not kept byte for byte');
  const after = rawSegments(r.stored).filter((s) => s.offset >= keepEnd);
  const head = orig.subarray(0, 32);
  if (after.length !== 2 || after[1]!.offset + after[1]!.length !== r.stored.length) p.push(`${after.length} segments after the intact ones`);
  else {
    const [rep, fin] = after as [RawSegment, RawSegment];
    if (rep.flags !== REF_REPAIR) p.push(`repair segment flags ${rep.flags}`);
    if (gcmOpen(key, head, whole, rep.flags, rep.body) !== null) p.push('repair segment opens with the torn counter (nonce reuse)');
    if (gcmOpen(key, head, whole + 1, REF_REPAIR, rep.body) === null) p.push('repair segment does not open with last intact counter + 2');
    if (gcmOpen(key, head, whole + 1, 0, rep.body) !== null) p.push('repair segment opens without its flag');
    const eos = gcmOpen(key, head, whole + 1, REF_REPAIR, rep.body);
    if (eos && !r.plain.equals(Buffer.concat([intactPlain, eos]))) p.push('plain is not intact plain + repair segment');
    if (fin.flags !== REF_FINAL || fin.length !== 21 || gcmOpen(key, head, whole + 2, REF_FINAL, fin.body)?.length !== 0) p.push('final segment: not empty, FINAL, counter last intact + 3');
  }
  if (!r.plain.subarray(0, intactPlain.length).equals(intactPlain)) p.push('intact plain not kept');
  if (r.cutBytes !== cut - keepEnd) p.push(`cutBytes ${r.cutBytes}, want ${cut - keepEnd}`);
  const last = intactPages[intactPages.length - 1]!;
  if (r.finalGranule !== last.granule) p.push(`finalGranule ${r.finalGranule}, want ${last.granule}`);
  try {
    const pages = refParsePages(r.plain);
    const added = pages.slice(intactPages.length);
    if (added.length !== 1) p.push(`${added.length} pages added`);
    else {
      const e = added[0]!;
      if (e.flags !== FLAG_EOS) p.push(`added page flags ${e.flags}`);
      if (e.granule !== last.granule || e.serial !== last.serial || e.sequence !== last.sequence + 1) p.push('added page granule/serial/sequence');
      if (e.lacing.length !== 1 || !e.body.equals(Buffer.from([0x08]))) p.push('added page: not one TOC-only mono packet');
    }
  } catch (e) {
    p.push(`plain pages: ${(e as Error).message}`);
  }
  return { kind: 'appended', problems: p };
}

t.test('a keyed EncodeSession file, finished: figures, plain, opusinfo', async (t) => {
  const key = randomBytes(32);
  const s = running('finished', key);
  const result = finishSession(s);
  const file = readFileSync(s.path);
  t.equal(statSync(s.path).size, file.length, 'file read whole');
  t.equal(result.storedBytes, file.length, `storedBytes = file length ${file.length}`);
  t.equal(result.storedSha256, createHash('sha256').update(file).digest('hex'), 'storedSha256 = SHA-256 of the file');
  checkHeaderBytes(t, file);
  const opened = openSealed(file, key);
  t.equal(opened.complete, true, 'complete');
  const own = ownPlains(file, key);
  t.ok(Buffer.concat(own.plains).equals(opened.plain), 'our own decryption gives the same plain');
  t.equal(result.audioBytes, opened.plain.length, 'audioBytes = plain length');
  t.equal(result.audioSha256, createHash('sha256').update(opened.plain).digest('hex'), 'audioSha256 = SHA-256 of the plain');
  t.notOk(file.includes(Buffer.from('OggS')), 'no Ogg capture pattern in the stored bytes');
  t.notOk(file.includes(Buffer.from('OpusHead')), 'no OpusHead in the stored bytes');
  // Segments end on page boundaries: each segment's plain is whole pages.
  t.ok(own.plains.every((p) => { try { refParsePages(p); return true; } catch { return false; } }), 'every segment holds whole Ogg pages');
  t.equal(refParsePages(own.plains[0]!).length, 2, 'segment 0: OpusHead and OpusTags pages');
  t.ok(opened.segments.length >= 20, `${opened.segments.length} segments`);
  t.same(oggProblems(opened.plain), [], 'the plain is a valid Ogg Opus stream');
  const pages = refParsePages(opened.plain);
  t.equal(pages[pages.length - 1]!.granule, 312n + BigInt(TOTAL) * 6n, 'final granule 312 + 24000 * 6');
  t.equal(result.finalGranule, (312n + BigInt(TOTAL) * 6n).toString(), 'result.finalGranule');
  checkOpusinfo(t, opened.plain, 'finished', 312n + BigInt(TOTAL) * 6n);
  t.throws(() => openSealed(file, randomBytes(32)), SealedStreamError, 'a wrong key fails');
  const again = repairSealed(file, key, FALLBACK);
  t.ok(again.stored.equals(file) && again.cutBytes === 0, 'repair leaves a complete file as it is');
});

t.test('repair of a keyed recording cut by a crash, at every byte offset', async (t) => {
  const key = randomBytes(32);
  const s = running('crashed', key);
  const orig = Buffer.from(readFileSync(s.path)); // as it is on disk, the session still running
  const { segs, plains } = ownPlains(orig, key);
  t.equal(segs[segs.length - 1]!.offset + segs[segs.length - 1]!.length, orig.length, 'the file ends on a segment boundary');
  t.ok(segs.every((x) => x.flags === 0), 'no final segment yet');
  t.ok(segs.length >= 20, `${segs.length} segments written before the crash`);
  t.throws(() => openSealed(orig, key), { code: 'TRUNCATED' }, 'strict open refuses it');
  finishSession(s); // close the file; the copy above is what a crash left

  const tally = new Tally();
  const kinds = { complete: 0, appended: 0, rebuilt: 0 };
  const samples = new Map<string, { cut: number; r: SealedRepair }>();
  const sampleCuts = new Set<number>([0, 20, 32, 40, segs[0]!.offset + segs[0]!.length, segs[1]!.offset + 30, orig.length]);
  for (let k = 2; k < segs.length; k += 4) sampleCuts.add(segs[k]!.offset + Math.floor(segs[k]!.length / 2));
  for (let cut = 0; cut <= orig.length; cut++) {
    let r: SealedRepair;
    try {
      r = repairSealed(orig.subarray(0, cut), key, FALLBACK);
    } catch (e) {
      tally.add(cut, `repairSealed threw: ${(e as Error).message}`);
      continue;
    }
    const c = checkRepair(orig, segs, plains, key, cut, r);
    kinds[c.kind]++;
    for (const x of c.problems) tally.add(cut, `${c.kind}: ${x}`);
    if (sampleCuts.has(cut)) samples.set(`cut-${cut}-${c.kind}`, { cut, r });
  }
  t.same(tally.report, {}, `${orig.length + 1} cuts repaired as worked out`);
  const seg1End = segs[1]!.offset + segs[1]!.length;
  t.same(kinds, { complete: 0, appended: orig.length + 1 - seg1End, rebuilt: seg1End }, 'cuts before the end of segment 1 rebuild, later ones append');
  for (const [name, { r }] of samples) checkOpusinfo(t, r.plain, name, r.finalGranule);
});

t.test('repair of a finished keyed recording cut at every byte offset', async (t) => {
  const key = randomBytes(32);
  const s = running('finished-cut', key);
  finishSession(s);
  const orig = readFileSync(s.path);
  const { segs, plains } = ownPlains(orig, key);
  const last = segs[segs.length - 1]!;
  t.equal(last.flags, REF_FINAL, 'ends with the final segment');
  const tally = new Tally();
  // Only the cuts from the last data segment on differ from the crashed case; check them all, and a
  // sample before.
  const from = segs[segs.length - 3]!.offset;
  for (let cut = from; cut <= orig.length; cut++) {
    const r = repairSealed(orig.subarray(0, cut), key, FALLBACK);
    const c = checkRepair(orig, segs, plains, key, cut, r);
    // Inside the final segment, the intact plain already ends with the EOS page: exact structure
    // expectations above assume a non-EOS last page, so only the general ones apply here.
    const inFinal = cut >= last.offset && cut < orig.length;
    const probs = inFinal ? c.problems.filter((x) => x.startsWith('ogg:') || x.startsWith('result')) : c.problems;
    // Only the final segment was lost: repair writes it again, with the same counter, flags and empty
    // plain, so the result is the original file byte for byte (GCM is deterministic for a given nonce).
    if (inFinal && !r.stored.equals(orig)) probs.push('a file torn in its final segment is not restored byte for byte');
    // From the end of the last data segment on, every audio page (and the EOS page) is intact.
    if (cut >= last.offset && r.finalGranule !== 312n + BigInt(TOTAL) * 6n) probs.push(`finalGranule ${r.finalGranule}, want the original's`);
    for (const x of probs) tally.add(cut, `${inFinal ? 'cut inside the final segment' : c.kind}: ${x}`);
    if (cut === last.offset + 10) {
      const pages = refParsePages(r.plain);
      t.comment(`cut inside the final segment (${cut}): EOS flags on the last pages: ${pages.slice(-3).map((p) => `seq ${p.sequence} flags ${p.flags} granule ${p.granule}`).join('; ')}`);
      checkOpusinfo(t, r.plain, `finished-cut-in-final-${cut}`);
    }
  }
  t.same(tally.report, {}, `cuts ${from}..${orig.length}: every repaired plain is a valid Ogg Opus stream with one EOS page, at the end`);
});
