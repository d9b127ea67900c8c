import { oggCrc } from './crc.js';
import { HEADER_CONTINUED, HEADER_EOS } from './page.js';
import { parseOpusHead, type OpusHead } from './opusHeaders.js';

export interface OggPageInfo {
  offset: number;
  length: number;
  headerType: number;
  granule: bigint;
  serial: number;
  sequence: number;
}

/**
 * Walks the pages at the start of `bytes` and stops at the first that is incomplete or fails its CRC.
 * `validLength` is where the intact prefix ends.
 */
export function scanPages(bytes: Uint8Array): { pages: OggPageInfo[]; validLength: number } {
  const buf = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const pages: OggPageInfo[] = [];
  let off = 0;
  while (off + 27 <= buf.length) {
    if (buf[off] !== 0x4f || buf[off + 1] !== 0x67 || buf[off + 2] !== 0x67 || buf[off + 3] !== 0x53 || buf[off + 4] !== 0) break; // "OggS", version 0
    const nseg = buf[off + 26]!;
    if (off + 27 + nseg > buf.length) break;
    let body = 0;
    for (let i = 0; i < nseg; i++) body += buf[off + 27 + i]!;
    const length = 27 + nseg + body;
    if (off + length > buf.length) break;
    const page = Buffer.from(buf.subarray(off, off + length));
    const crc = page.readUInt32LE(22);
    page.writeUInt32LE(0, 22);
    if (oggCrc(page) !== crc) break;
    pages.push({
      offset: off,
      length,
      headerType: buf[off + 5]!,
      granule: buf.readBigInt64LE(off + 6),
      serial: buf.readUInt32LE(off + 14),
      sequence: buf.readUInt32LE(off + 18),
    });
    off += length;
  }
  return { pages, validLength: off };
}

export interface OggOpusStream {
  head: OpusHead;
  /** Audio packets (after OpusHead and OpusTags). */
  packets: Buffer[];
  /** Granule of the last page. */
  finalGranule: bigint;
  endOfStream: boolean;
  pages: OggPageInfo[];
}

/** Parses a whole, intact single-stream Ogg Opus file; throws on anything else. */
export function readOggOpus(bytes: Uint8Array): OggOpusStream {
  const buf = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const { pages, validLength } = scanPages(buf);
  if (validLength !== buf.length) throw new Error(`Ogg data damaged at byte ${validLength} of ${buf.length}`);
  const packets: Buffer[] = [];
  let partial: Buffer[] = [];
  for (const p of pages) {
    const nseg = buf[p.offset + 26]!;
    if (!(p.headerType & HEADER_CONTINUED) && partial.length > 0) throw new Error(`page ${p.sequence}: packet not continued`);
    let off = p.offset + 27 + nseg;
    for (let i = 0; i < nseg; i++) {
      const lace = buf[p.offset + 27 + i]!;
      partial.push(buf.subarray(off, off + lace));
      off += lace;
      if (lace < 255) {
        packets.push(Buffer.concat(partial));
        partial = [];
      }
    }
  }
  const head = packets.length > 0 ? parseOpusHead(packets[0]!) : null;
  if (!head) throw new Error('not an Ogg Opus stream (no OpusHead)');
  if (packets.length < 2 || packets[1]!.toString('ascii', 0, 8) !== 'OpusTags') throw new Error('no OpusTags');
  const last = pages[pages.length - 1]!;
  return { head, packets: packets.slice(2), finalGranule: last.granule, endOfStream: (last.headerType & HEADER_EOS) !== 0, pages };
}
