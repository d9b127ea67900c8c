import { randomBytes } from 'node:crypto';
import { buildPage, HEADER_EOS } from '../ogg/page.js';
import { scanPages } from '../ogg/OggReader.js';
import { repairOggOpus } from '../ogg/repairOggOpus.js';
import type { OpusHead } from '../ogg/opusHeaders.js';
import { FLAG_FINAL, FLAG_REPAIR, header } from './format.js';
import { openSealed } from './openSealed.js';
import { sealSegment } from './SealSink.js';

export class RepairRefusedError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'RepairRefusedError';
  }
}

export interface SealedRepair {
  /** The repaired file: the intact segments as they were, plus what repair appended. */
  stored: Buffer;
  /** The plain Ogg Opus stream inside it. */
  plain: Buffer;
  finalGranule: bigint;
  cutBytes: number;
}

/**
 * Closes a sealed stream cut by a crash without re-sealing anything written: the intact segments stay
 * byte for byte; after them come one repair segment holding an end-of-stream Ogg page (a lost-frame
 * packet whose samples the granule trims away) and the empty final segment. Segments always end on
 * page boundaries, so the pages inside are whole.
 */
export function repairSealed(bytes: Buffer, key: Buffer, fallback: OpusHead): SealedRepair {
  let opened;
  try {
    opened = openSealed(bytes, key, true);
  } catch {
    opened = null; // not even the header survived
  }
  if (opened?.complete) {
    const { pages } = scanPages(opened.plain);
    return { stored: bytes, plain: opened.plain, finalGranule: pages[pages.length - 1]?.granule ?? 0n, cutBytes: 0 };
  }
  if (opened && opened.stoppedBy !== 'TRUNCATED') {
    // A whole segment that does not open is not a crash's doing: a wrong key, or damage. Touch nothing.
    throw new RepairRefusedError(`segment ${opened.segments.length} is whole but does not open (${opened.stoppedBy}): wrong key or damage, not a torn write`);
  }
  const pages = opened ? scanPages(opened.plain).pages : [];
  if (!opened || pages.length < 3) {
    // No audio page survived: nothing sealed is kept, so a fresh stream (new nonce prefix) is safe.
    const rebuilt = repairOggOpus(opened?.plain ?? Buffer.alloc(0), fallback);
    const head = header(randomBytes(7));
    const stored = Buffer.concat([head, sealSegment(key, head, 0, 0, rebuilt.bytes), sealSegment(key, head, 1, FLAG_FINAL, Buffer.alloc(0))]);
    return { stored, plain: rebuilt.bytes, finalGranule: rebuilt.finalGranule, cutBytes: bytes.length };
  }
  const last = pages[pages.length - 1]!;
  const lastSegment = opened.segments[opened.segments.length - 1]!;
  const keep = bytes.subarray(0, lastSegment.offset + lastSegment.length);
  if (last.headerType & HEADER_EOS) {
    // Only the final segment was lost: write it again. Same counter, flags and (empty) plain as the torn
    // one would have had, so even its nonce use is identical, not reused for other bytes.
    const stored = Buffer.concat([keep, sealSegment(key, opened.head, opened.nextCounter, FLAG_FINAL, Buffer.alloc(0))]);
    return { stored, plain: opened.plain, finalGranule: last.granule, cutBytes: bytes.length - keep.length };
  }
  const channels = pages.length > 0 ? (opened.plain[pages[0]!.offset + 27 + opened.plain[pages[0]!.offset + 26]! + 9] ?? fallback.channels) : fallback.channels;
  const toc = Buffer.from([(1 << 3) | ((channels === 2 ? 1 : 0) << 2)]);
  const eos = buildPage({ headerType: HEADER_EOS, granule: last.granule, serial: last.serial, sequence: last.sequence + 1 }, [toc]);
  const stored = Buffer.concat([
    keep,
    sealSegment(key, opened.head, opened.nextCounter + 1, FLAG_REPAIR, eos),
    sealSegment(key, opened.head, opened.nextCounter + 2, FLAG_FINAL, Buffer.alloc(0)),
  ]);
  return { stored, plain: Buffer.concat([opened.plain, eos]), finalGranule: last.granule, cutBytes: bytes.length - keep.length };
}
