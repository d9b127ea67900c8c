/**
 * Test helpers for the sealed stream tests, written independently of daemon/store/sealed: the layout is
 * taken from the format's documentation (32-byte header "CRECAUD1" | version | 3 reserved | 7-byte nonce
 * prefix | 13 reserved; segments flags (1) | length (4, BE) | AES-256-GCM ciphertext + 16-byte tag; nonce =
 * prefix | counter (4, BE) | flags; the header is the associated data) and coded here from scratch with
 * node:crypto, without importing the product's constants or functions.
 */
import { createDecipheriv } from 'node:crypto';
import type { ByteSink } from '../../daemon/store/ByteSink.js';

export const REF_HEADER = 32;
export const REF_SEG_HEAD = 5;
export const REF_TAG = 16;
export const REF_FINAL = 0x01;
export const REF_REPAIR = 0x02;

/** A segment as it is laid out in the file (nothing checked but that it fits). */
export interface RawSegment {
  /** Offset of its flags byte in the file. */
  offset: number;
  flags: number;
  /** The whole segment: 5 + ciphertext + tag. */
  length: number;
  /** Ciphertext + tag. */
  body: Buffer;
}

/** Walks the segments of a sealed file by their length fields; stops at the first that does not fit. */
export function rawSegments(file: Buffer): RawSegment[] {
  const out: RawSegment[] = [];
  let off = REF_HEADER;
  while (off + REF_SEG_HEAD <= file.length) {
    const len = file.readUInt32BE(off + 1);
    if (off + REF_SEG_HEAD + len > file.length) break;
    out.push({ offset: off, flags: file[off]!, length: REF_SEG_HEAD + len, body: file.subarray(off + REF_SEG_HEAD, off + REF_SEG_HEAD + len) });
    off += REF_SEG_HEAD + len;
  }
  return out;
}

/** The 12-byte GCM nonce, built by hand: header bytes 12..18, counter big-endian, flags. */
export function refNonce(head: Buffer, counter: number, flags: number): Buffer {
  const n = Buffer.alloc(12);
  for (let i = 0; i < 7; i++) n[i] = head[12 + i]!;
  n[7] = (counter >>> 24) & 0xff;
  n[8] = (counter >>> 16) & 0xff;
  n[9] = (counter >>> 8) & 0xff;
  n[10] = counter & 0xff;
  n[11] = flags;
  return n;
}

/** Opens one segment body (ciphertext + tag) with AES-256-GCM; null when authentication fails. */
export function gcmOpen(key: Buffer, head: Buffer, counter: number, flags: number, body: Buffer): Buffer | null {
  if (body.length < REF_TAG) return null;
  try {
    const d = createDecipheriv('aes-256-gcm', key, refNonce(head, counter, flags), { authTagLength: REF_TAG });
    d.setAAD(head);
    d.setAuthTag(body.subarray(body.length - REF_TAG));
    return Buffer.concat([d.update(body.subarray(0, body.length - REF_TAG)), d.final()]);
  } catch {
    return null;
  }
}

/** The end sink of a chain, in memory: records writes, flushes and the close. */
export class MemorySink implements ByteSink {
  readonly chunks: Buffer[] = [];
  flushes = 0;
  closes = 0;

  write(bytes: Buffer): void {
    if (this.closes > 0) throw new Error('write after close');
    this.chunks.push(Buffer.from(bytes));
  }

  flush(): void {
    this.flushes++;
  }

  close(): void {
    this.closes++;
  }

  get bytes(): Buffer {
    return Buffer.concat(this.chunks);
  }
}

/** A small deterministic PRNG (mulberry32), so a failing case can be reproduced. */
export function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export function randomPlain(rand: () => number, n: number): Buffer {
  const b = Buffer.alloc(n);
  for (let i = 0; i < n; i++) b[i] = Math.floor(rand() * 256);
  return b;
}
