/**
 * Test helpers for the Ogg Opus tests, written independently of daemon/store/ogg: an Ogg page parser
 * and a bit-by-bit CRC straight from RFC 3533, opus-tools (opusenc, opusdec, opusinfo) run as child
 * processes, and a plain time-domain normalised cross-correlation.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { createRequire } from 'node:module';
import { readWav, type Wav } from './audio.js';

// ---------------------------------------------------------------------------------------------------
// Ogg pages (RFC 3533)

export interface RefPage {
  offset: number;
  /** Bytes of the whole page. */
  length: number;
  version: number;
  flags: number;
  granule: bigint;
  serial: number;
  sequence: number;
  storedCrc: number;
  lacing: number[];
  /** Page body (the packet data). */
  body: Buffer;
  /** The page as it is in the file. */
  raw: Buffer;
}

export const FLAG_CONTINUED = 1;
export const FLAG_BOS = 2;
export const FLAG_EOS = 4;

/** Parses every page of `buf`; throws unless the whole buffer is a sequence of complete pages. */
export function refParsePages(buf: Buffer): RefPage[] {
  const pages: RefPage[] = [];
  let off = 0;
  while (off < buf.length) {
    if (off + 27 > buf.length) throw new Error(`truncated page header at ${off}`);
    if (buf.toString('latin1', off, off + 4) !== 'OggS') throw new Error(`no capture pattern at ${off}`);
    const nseg = buf[off + 26]!;
    const lacing = [...buf.subarray(off + 27, off + 27 + nseg)];
    if (lacing.length !== nseg) throw new Error(`truncated lacing at ${off}`);
    const bodyLen = lacing.reduce((a, b) => a + b, 0);
    const length = 27 + nseg + bodyLen;
    if (off + length > buf.length) throw new Error(`truncated page body at ${off}`);
    const raw = buf.subarray(off, off + length);
    pages.push({
      offset: off,
      length,
      version: buf[off + 4]!,
      flags: buf[off + 5]!,
      granule: buf.readBigInt64LE(off + 6),
      serial: buf.readUInt32LE(off + 14),
      sequence: buf.readUInt32LE(off + 18),
      storedCrc: buf.readUInt32LE(off + 22),
      lacing,
      body: raw.subarray(27 + nseg),
      raw,
    });
    off += length;
  }
  return pages;
}

/** Packets of a page sequence, joining continued ones (a packet ends at a lacing value below 255). */
export function refPackets(pages: RefPage[]): Buffer[] {
  const out: Buffer[] = [];
  let partial: Buffer[] = [];
  for (const p of pages) {
    let off = 0;
    for (const lace of p.lacing) {
      partial.push(p.body.subarray(off, off + lace));
      off += lace;
      if (lace < 255) {
        out.push(Buffer.concat(partial));
        partial = [];
      }
    }
  }
  if (partial.length > 0) throw new Error('stream ends inside a packet');
  return out;
}

/**
 * Ogg's CRC computed bit by bit with no table, straight from the definition: generator 0x04c11db7,
 * register starts at 0, data fed most significant bit first, no reflection, no final xor.
 */
export function refCrc(bytes: Uint8Array): number {
  let reg = 0;
  for (const byte of bytes) {
    for (let bit = 7; bit >= 0; bit--) {
      const inBit = (byte >> bit) & 1;
      const top = (reg >>> 31) & 1;
      reg = (reg << 1) >>> 0;
      if (top ^ inBit) reg = (reg ^ 0x04c11db7) >>> 0;
    }
  }
  return reg >>> 0;
}

/** The page with its CRC field zeroed (what the CRC is computed over). */
export function zeroedCrc(page: Buffer): Buffer {
  const copy = Buffer.from(page);
  copy.writeUInt32LE(0, 22);
  return copy;
}

export interface RefOpusHead {
  version: number;
  channels: number;
  preSkip: number;
  inputRate: number;
  gain: number;
  mapping: number;
}

export function refOpusHead(p: Buffer): RefOpusHead {
  if (p.length < 19 || p.toString('latin1', 0, 8) !== 'OpusHead') throw new Error('not an OpusHead packet');
  return { version: p[8]!, channels: p[9]!, preSkip: p.readUInt16LE(10), inputRate: p.readUInt32LE(12), gain: p.readInt16LE(16), mapping: p[18]! };
}

/** Replaces the OpusHead pre-skip of a file (first page) and re-stamps that page's CRC with refCrc. */
export function withPreSkip(file: Buffer, preSkip: number): Buffer {
  const out = Buffer.from(file);
  const first = refParsePages(out)[0]!;
  const bodyStart = first.offset + 27 + first.lacing.length;
  out.writeUInt16LE(preSkip, bodyStart + 10);
  const page = out.subarray(first.offset, first.offset + first.length);
  page.writeUInt32LE(0, 22);
  page.writeUInt32LE(refCrc(page), 22);
  return out;
}

// ---------------------------------------------------------------------------------------------------
// opus-tools

let toolsChecked = false;

/** Throws a clear message when opus-tools is not installed. */
export function requireOpusTools(): void {
  if (toolsChecked) return;
  for (const tool of ['opusenc', 'opusdec', 'opusinfo']) {
    const r = spawnSync(tool, ['--version'], { encoding: 'utf8' });
    if (r.error) throw new Error(`${tool} not found: install the Debian package opus-tools (apt-get install opus-tools)`);
  }
  toolsChecked = true;
}

export function opusenc(wavPath: string, outPath: string, extra: string[] = []): void {
  requireOpusTools();
  execFileSync('opusenc', ['--quiet', ...extra, wavPath, outPath], { stdio: ['ignore', 'pipe', 'pipe'] });
}

export interface OpusinfoResult {
  status: number | null;
  output: string;
  /** Lines that warn or report an error. */
  problems: string[];
  /** Stated pre-skip, from its "Pre-skip:" line. */
  preSkip: number | null;
  /** "Playback length: XmY.ZZZs" in seconds. */
  playbackS: number | null;
}

export function opusinfo(path: string): OpusinfoResult {
  requireOpusTools();
  const r = spawnSync('opusinfo', [path], { encoding: 'utf8' });
  const output = `${r.stdout ?? ''}${r.stderr ?? ''}`;
  const problems = output.split('\n').filter((l) => /warn|error|invalid|corrupt|hole|fail/i.test(l));
  const pre = /Pre-skip:\s*(\d+)/.exec(output);
  const len = /Playback length:\s*(\d+)m:(\d+(?:\.\d+)?)s/.exec(output);
  return {
    status: r.status,
    output,
    problems,
    preSkip: pre ? Number(pre[1]) : null,
    playbackS: len ? Number(len[1]) * 60 + Number(len[2]) : null,
  };
}

/** Decodes with opusdec at `rate` (no dither, so the output is the decoder's own rounding) into a WAV. */
export function opusdec(path: string, outWav: string, rate: number): Wav {
  requireOpusTools();
  execFileSync('opusdec', ['--quiet', '--no-dither', '--rate', String(rate), path, outWav], { stdio: ['ignore', 'pipe', 'pipe'] });
  return readWav(outWav);
}

// ---------------------------------------------------------------------------------------------------
// Decoding every packet with no pre-skip and no end trimming (libopus through @discordjs/opus)

const require = createRequire(import.meta.url);
const { OpusEncoder } = require('@discordjs/opus') as typeof import('@discordjs/opus');

export function decodeAllPackets(packets: Buffer[], rate: number, channels: number): Int16Array {
  const dec = new OpusEncoder(rate, channels);
  const parts = packets.map((p) => dec.decode(p));
  const all = Buffer.concat(parts);
  return Int16Array.from(new Int16Array(all.buffer, all.byteOffset, all.length / 2));
}

// ---------------------------------------------------------------------------------------------------
// Signals

/** Channel `c` of interleaved samples. */
export function channelOf(samples: Int16Array, channels: number, c: number): Int16Array {
  const out = new Int16Array(Math.floor(samples.length / channels));
  for (let i = 0; i < out.length; i++) out[i] = samples[i * channels + c]!;
  return out;
}

/**
 * Pearson correlation of `dec[i + lag]` with `src[i]` over all i where both exist (direct sum, no FFT).
 * A positive lag means the decoded signal runs late by `lag` samples.
 */
export function correlationAt(dec: ArrayLike<number>, src: ArrayLike<number>, lag: number): number {
  const lo = Math.max(0, -lag);
  const hi = Math.min(src.length, dec.length - lag);
  const n = hi - lo;
  if (n < 2) return 0;
  let sa = 0, sb = 0, saa = 0, sbb = 0, sab = 0;
  for (let i = lo; i < hi; i++) {
    const a = dec[i + lag]!, b = src[i]!;
    sa += a;
    sb += b;
    saa += a * a;
    sbb += b * b;
    sab += a * b;
  }
  const va = saa - (sa * sa) / n, vb = sbb - (sb * sb) / n;
  if (va <= 0 || vb <= 0) return 0;
  return (sab - (sa * sb) / n) / Math.sqrt(va * vb);
}

/** The lag in [-maxLag, maxLag] with the highest correlation. */
export function bestLag(dec: ArrayLike<number>, src: ArrayLike<number>, maxLag: number): { lag: number; r: number } {
  let best = { lag: 0, r: -Infinity };
  for (let lag = -maxLag; lag <= maxLag; lag++) {
    const r = correlationAt(dec, src, lag);
    if (r > best.r) best = { lag, r };
  }
  return best;
}
