import { readFileSync } from 'node:fs';

export interface Wav {
  sampleRate: number;
  channels: number;
  /** Interleaved samples. */
  samples: Int16Array;
}

/** Reads a 16-bit PCM WAV file (plain or WAVE_FORMAT_EXTENSIBLE). Independent of the daemon's reader on purpose. */
export function readWav(path: string): Wav {
  const buf = readFileSync(path);
  if (buf.toString('ascii', 0, 4) !== 'RIFF' || buf.toString('ascii', 8, 12) !== 'WAVE') throw new Error(`${path}: not a RIFF/WAVE file`);
  let fmt: { format: number; channels: number; sampleRate: number; bits: number } | undefined;
  for (let off = 12; off + 8 <= buf.length; ) {
    const id = buf.toString('ascii', off, off + 4);
    const size = buf.readUInt32LE(off + 4);
    const body = off + 8;
    if (id === 'fmt ') {
      const tag = buf.readUInt16LE(body);
      fmt = {
        format: tag === 0xfffe ? buf.readUInt16LE(body + 24) : tag,
        channels: buf.readUInt16LE(body + 2),
        sampleRate: buf.readUInt32LE(body + 4),
        bits: buf.readUInt16LE(body + 14),
      };
    } else if (id === 'data') {
      if (!fmt || fmt.format !== 1 || fmt.bits !== 16) throw new Error(`${path}: only 16-bit PCM is supported`);
      const n = Math.floor((Math.min(buf.length, body + size) - body) / 2);
      const samples = new Int16Array(n);
      for (let i = 0; i < n; i++) samples[i] = buf.readInt16LE(body + 2 * i);
      return { sampleRate: fmt.sampleRate, channels: fmt.channels, samples };
    }
    off = body + size + (size & 1);
  }
  throw new Error(`${path}: no data chunk`);
}

export function rms(x: ArrayLike<number>): number {
  let s = 0;
  for (let i = 0; i < x.length; i++) s += x[i]! * x[i]!;
  return x.length ? Math.sqrt(s / x.length) : 0;
}

/**
 * Best normalised cross-correlation (Pearson r over the overlap) of `a` against `b` for lags in
 * [-maxLagSamples, maxLagSamples]. `lag` > 0 means b[i] lines up with a[i + lag] (b appears later in a).
 * Lags whose overlap is shorter than `minOverlap` (default: half the shorter signal) are ignored, as a
 * few overlapping samples correlate by chance. Uses an FFT, so long signals and wide searches are cheap.
 */
export function bestCorrelation(
  a: ArrayLike<number>,
  b: ArrayLike<number>,
  maxLagSamples: number,
  minOverlap = Math.ceil(Math.min(a.length, b.length) / 2),
): { r: number; lag: number } {
  const na = a.length;
  const nb = b.length;
  let size = 1;
  while (size < na + nb) size *= 2;
  const ar = new Float64Array(size), ai = new Float64Array(size);
  const br = new Float64Array(size), bi = new Float64Array(size);
  for (let i = 0; i < na; i++) ar[i] = a[i]!;
  for (let i = 0; i < nb; i++) br[i] = b[i]!;
  fft(ar, ai, false);
  fft(br, bi, false);
  for (let k = 0; k < size; k++) {
    // A * conj(B): its inverse is sum_i a[i + lag] * b[i] at index lag (mod size).
    const re = ar[k]! * br[k]! + ai[k]! * bi[k]!;
    const im = ai[k]! * br[k]! - ar[k]! * bi[k]!;
    ar[k] = re;
    ai[k] = im;
  }
  fft(ar, ai, true);
  const pa = prefix(a), pa2 = prefix(a, true), pb = prefix(b), pb2 = prefix(b, true);
  let best = { r: 0, lag: 0 };
  for (let lag = -maxLagSamples; lag <= maxLagSamples; lag++) {
    const lo = Math.max(0, -lag);
    const hi = Math.min(nb, na - lag);
    const n = hi - lo;
    if (n < Math.max(2, minOverlap)) continue;
    const sa = pa[hi + lag]! - pa[lo + lag]!, saa = pa2[hi + lag]! - pa2[lo + lag]!;
    const sb = pb[hi]! - pb[lo]!, sbb = pb2[hi]! - pb2[lo]!;
    const sab = ar[(lag + size) % size]! / size;
    const va = saa - (sa * sa) / n;
    const vb = sbb - (sb * sb) / n;
    if (va <= 0 || vb <= 0) continue;
    const r = (sab - (sa * sb) / n) / Math.sqrt(va * vb);
    if (r > best.r) best = { r, lag };
  }
  return best;
}

function prefix(x: ArrayLike<number>, squared = false): Float64Array {
  const p = new Float64Array(x.length + 1);
  for (let i = 0; i < x.length; i++) p[i + 1] = p[i]! + (squared ? x[i]! * x[i]! : x[i]!);
  return p;
}

/** In-place iterative radix-2 FFT; the inverse is left unscaled. */
function fft(re: Float64Array, im: Float64Array, inverse: boolean): void {
  const n = re.length;
  for (let i = 1, j = 0; i < n; i++) {
    let bit = n >> 1;
    for (; j & bit; bit >>= 1) j ^= bit;
    j ^= bit;
    if (i < j) {
      [re[i], re[j]] = [re[j]!, re[i]!];
      [im[i], im[j]] = [im[j]!, im[i]!];
    }
  }
  for (let len = 2; len <= n; len *= 2) {
    const ang = ((inverse ? 2 : -2) * Math.PI) / len;
    const wr = Math.cos(ang), wi = Math.sin(ang);
    for (let i = 0; i < n; i += len) {
      let cr = 1, ci = 0;
      for (let k = 0; k < len / 2; k++) {
        const p = i + k, q = p + len / 2;
        const xr = re[q]! * cr - im[q]! * ci;
        const xi = re[q]! * ci + im[q]! * cr;
        re[q] = re[p]! - xr;
        im[q] = im[p]! - xi;
        re[p] = re[p]! + xr;
        im[p] = im[p]! + xi;
        const t = cr * wr - ci * wi;
        ci = cr * wi + ci * wr;
        cr = t;
      }
    }
  }
}
