import { createDecipheriv } from 'node:crypto';
import { FLAG_FINAL, FLAG_REPAIR, HEADER_BYTES, MAGIC, MAX_SEGMENT_BYTES, nonce, SEGMENT_HEAD_BYTES, TAG_BYTES, VERSION } from './format.js';

export interface SegmentInfo {
  /** Where the segment starts in the stored file. */
  offset: number;
  length: number;
  /** Where its plain bytes start in the plain stream, and how many. */
  plainOffset: number;
  plainLength: number;
  flags: number;
}

export type SealedErrorCode = 'BAD_HEADER' | 'BAD_SEGMENT' | 'TRUNCATED' | 'TRAILING_DATA';

export class SealedStreamError extends Error {
  constructor(readonly code: SealedErrorCode, readonly segment: number, message: string) {
    super(message);
    this.name = 'SealedStreamError';
  }
}

export interface OpenedStream {
  plain: Buffer;
  segments: SegmentInfo[];
  /** False when the stream stops without its final segment (a crash): only repair accepts that. */
  complete: boolean;
  /** The next free counter after the last segment that opened. */
  nextCounter: number;
  /** With `allowIncomplete`: why reading stopped early (TRUNCATED: torn by a crash; anything else: damage). */
  stoppedBy?: SealedErrorCode;
  head: Buffer;
}

/**
 * Opens a sealed stream, checking every segment. With `allowIncomplete` (crash repair) it stops at the
 * first segment that is torn or fails, and says how far it got; otherwise any fault throws, naming the
 * segment, and nothing is returned as plain audio.
 */
export function openSealed(bytes: Buffer, key: Buffer, allowIncomplete = false): OpenedStream {
  if (bytes.length < HEADER_BYTES || !bytes.subarray(0, 8).equals(Buffer.from(MAGIC, 'latin1')) || bytes[8] !== VERSION) {
    throw new SealedStreamError('BAD_HEADER', -1, 'not a callrec sealed stream (bad header)');
  }
  const head = bytes.subarray(0, HEADER_BYTES);
  const segments: SegmentInfo[] = [];
  const parts: Buffer[] = [];
  let off = HEADER_BYTES;
  let plainOffset = 0;
  let counter = 0;
  let complete = false;
  const fail = (code: SealedErrorCode, message: string): OpenedStream => {
    if (!allowIncomplete) throw new SealedStreamError(code, segments.length, `segment ${segments.length}: ${message}`);
    return { plain: Buffer.concat(parts), segments, complete: false, nextCounter: counter, head, stoppedBy: code };
  };
  while (off < bytes.length) {
    if (complete) return fail('TRAILING_DATA', 'data after the final segment');
    if (off + SEGMENT_HEAD_BYTES > bytes.length) return fail('TRUNCATED', 'cut inside its header');
    const flags = bytes[off]!;
    const length = bytes.readUInt32BE(off + 1);
    if (length < TAG_BYTES || length > MAX_SEGMENT_BYTES || (flags & ~(FLAG_FINAL | FLAG_REPAIR)) !== 0) return fail('BAD_SEGMENT', 'bad segment header');
    if (off + SEGMENT_HEAD_BYTES + length > bytes.length) return fail('TRUNCATED', 'cut short');
    const body = bytes.subarray(off + SEGMENT_HEAD_BYTES, off + SEGMENT_HEAD_BYTES + length);
    // A repair segment follows a torn one whose counter it skips.
    const n = flags & FLAG_REPAIR ? counter + 1 : counter;
    let plain: Buffer;
    try {
      const d = createDecipheriv('aes-256-gcm', key, nonce(head, n, flags));
      d.setAAD(head);
      d.setAuthTag(body.subarray(length - TAG_BYTES));
      plain = Buffer.concat([d.update(body.subarray(0, length - TAG_BYTES)), d.final()]);
    } catch {
      return fail('BAD_SEGMENT', 'authentication failed (altered, moved, swapped or from another recording)');
    }
    segments.push({ offset: off, length: SEGMENT_HEAD_BYTES + length, plainOffset, plainLength: plain.length, flags });
    parts.push(plain);
    plainOffset += plain.length;
    counter = n + 1;
    off += SEGMENT_HEAD_BYTES + length;
    if (flags & FLAG_FINAL) complete = true;
  }
  if (!complete) return fail('TRUNCATED', 'the stream ends without its final segment');
  return { plain: Buffer.concat(parts), segments, complete, nextCounter: counter, head };
}
