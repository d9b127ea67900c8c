import { createDecipheriv } from 'node:crypto';
import { constants } from 'node:fs';
import { open, type FileHandle } from 'node:fs/promises';
import { FLAG_FINAL, FLAG_REPAIR, HEADER_BYTES, MAGIC, MAX_SEGMENT_BYTES, nonce, SEGMENT_HEAD_BYTES, TAG_BYTES, VERSION } from './format.js';
import { SealedStreamError } from './openSealed.js';

interface Segment {
  offset: number;
  cipherLength: number;
  plainOffset: number;
  plainLength: number;
  flags: number;
  counter: number;
}

/**
 * Random access to a sealed stream's plain bytes without opening all of it: the segment heads give
 * each segment's place in the plain stream (GCM keeps lengths: plain = ciphertext - tag), so a byte
 * range needs only the segments that cover it, each checked by its own tag, counter and final flag.
 * This is what lets the API answer an `<audio>` element's Range requests on the fly.
 */
export class SealedReader {
  private constructor(private readonly fh: FileHandle, private readonly head: Buffer, private readonly segments: Segment[], readonly plainLength: number) {}

  static async open(path: string): Promise<SealedReader> {
    // O_NOFOLLOW: a symlink planted where the audio belongs is refused, never followed.
    const fh = await open(path, constants.O_RDONLY | constants.O_NOFOLLOW);
    try {
      const { head, segments, plainLength } = await indexSegments(fh);
      return new SealedReader(fh, head, segments, plainLength);
    } catch (err) {
      await fh.close();
      throw err;
    }
  }

  /** The plain bytes [start, end] (inclusive), segment by segment, each authenticated before it is given out. */
  async *range(key: Buffer, start: number, end: number): AsyncGenerator<Buffer> {
    if (start < 0 || end >= this.plainLength || start > end) throw new RangeError(`range ${start}-${end} outside 0-${this.plainLength - 1}`);
    let i = firstCovering(this.segments, start);
    for (; i < this.segments.length; i++) {
      const s = this.segments[i]!;
      if (s.plainOffset > end) break;
      const body = Buffer.alloc(s.cipherLength);
      await this.fh.read(body, 0, body.length, s.offset + SEGMENT_HEAD_BYTES);
      let plain: Buffer;
      try {
        const d = createDecipheriv('aes-256-gcm', key, nonce(this.head, s.counter, s.flags));
        d.setAAD(this.head);
        d.setAuthTag(body.subarray(s.cipherLength - TAG_BYTES));
        plain = Buffer.concat([d.update(body.subarray(0, s.cipherLength - TAG_BYTES)), d.final()]);
      } catch {
        throw new SealedStreamError('BAD_SEGMENT', i, `segment ${i}: authentication failed (altered, moved, swapped or from another recording)`);
      }
      yield plain.subarray(Math.max(0, start - s.plainOffset), Math.min(plain.length, end - s.plainOffset + 1));
    }
  }

  async close(): Promise<void> {
    await this.fh.close();
  }
}

/** Walks the segment heads (5 bytes each) in 256 KiB reads; refuses a stream without its final segment. */
async function indexSegments(fh: FileHandle): Promise<{ head: Buffer; segments: Segment[]; plainLength: number }> {
  const size = (await fh.stat()).size;
  const head = Buffer.alloc(HEADER_BYTES);
  const got = (await fh.read(head, 0, HEADER_BYTES, 0)).bytesRead;
  if (got < HEADER_BYTES || !head.subarray(0, 8).equals(Buffer.from(MAGIC, 'latin1')) || head[8] !== VERSION) throw new SealedStreamError('BAD_HEADER', -1, 'not a callrec sealed stream (bad header)');
  const segments: Segment[] = [];
  const buf = Buffer.alloc(256 * 1024);
  let bufStart = -1;
  let bufLen = 0;
  const headAt = async (off: number): Promise<Buffer> => {
    if (off < bufStart || off + SEGMENT_HEAD_BYTES > bufStart + bufLen) {
      bufStart = off;
      bufLen = (await fh.read(buf, 0, buf.length, off)).bytesRead;
    }
    return buf.subarray(off - bufStart, off - bufStart + SEGMENT_HEAD_BYTES);
  };
  let off = HEADER_BYTES;
  let plainOffset = 0;
  let counter = 0;
  let final = false;
  while (off < size) {
    const n = segments.length;
    if (final) throw new SealedStreamError('TRAILING_DATA', n, `segment ${n}: data after the final segment`);
    if (off + SEGMENT_HEAD_BYTES > size) throw new SealedStreamError('TRUNCATED', n, `segment ${n}: cut inside its header`);
    const h = await headAt(off);
    const flags = h[0]!;
    const length = h.readUInt32BE(1);
    if (length < TAG_BYTES || length > MAX_SEGMENT_BYTES || (flags & ~(FLAG_FINAL | FLAG_REPAIR)) !== 0) throw new SealedStreamError('BAD_SEGMENT', n, `segment ${n}: bad segment header`);
    if (off + SEGMENT_HEAD_BYTES + length > size) throw new SealedStreamError('TRUNCATED', n, `segment ${n}: cut short`);
    const c = flags & FLAG_REPAIR ? counter + 1 : counter;
    segments.push({ offset: off, cipherLength: length, plainOffset, plainLength: length - TAG_BYTES, flags, counter: c });
    plainOffset += length - TAG_BYTES;
    counter = c + 1;
    off += SEGMENT_HEAD_BYTES + length;
    if (flags & FLAG_FINAL) final = true;
  }
  if (!final) throw new SealedStreamError('TRUNCATED', segments.length, 'the stream ends without its final segment');
  return { head, segments, plainLength: plainOffset };
}

function firstCovering(segs: Segment[], pos: number): number {
  let lo = 0;
  let hi = segs.length - 1;
  while (lo < hi) {
    const mid = (lo + hi + 1) >> 1;
    if (segs[mid]!.plainOffset <= pos) lo = mid;
    else hi = mid - 1;
  }
  return lo;
}
