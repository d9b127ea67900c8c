import { oggCrc } from './crc.js';

export const HEADER_CONTINUED = 0x01;
export const HEADER_BOS = 0x02;
export const HEADER_EOS = 0x04;
/** Ogg's granule position for "no packet ends on this page". */
export const NO_GRANULE = -1n;

export interface PageFields {
  headerType: number;
  granule: bigint;
  serial: number;
  sequence: number;
}

/** Builds one Ogg page holding whole packets (each packet is laced in full: none continues). */
export function buildPage(fields: PageFields, packets: readonly Uint8Array[]): Buffer {
  const lacing: number[] = [];
  for (const p of packets) {
    for (let n = p.length; ; n -= 255) {
      if (n < 255) {
        lacing.push(n);
        break;
      }
      lacing.push(255);
    }
  }
  if (lacing.length > 255) throw new RangeError(`Ogg page would need ${lacing.length} lacing values (max 255)`);
  const bodyLength = packets.reduce((n, p) => n + p.length, 0);
  const page = Buffer.alloc(27 + lacing.length + bodyLength);
  page.write('OggS', 0, 'ascii');
  page[4] = 0;
  page[5] = fields.headerType;
  page.writeBigInt64LE(fields.granule, 6);
  page.writeUInt32LE(fields.serial >>> 0, 14);
  page.writeUInt32LE(fields.sequence >>> 0, 18);
  page[26] = lacing.length;
  Buffer.from(lacing).copy(page, 27);
  let off = 27 + lacing.length;
  for (const p of packets) {
    page.set(p, off);
    off += p.length;
  }
  page.writeUInt32LE(oggCrc(page), 22);
  return page;
}

/** Lacing values a packet of `length` bytes takes. */
export function lacingCount(length: number): number {
  return Math.floor(length / 255) + 1;
}

/** Sets flags on a built page and recomputes its CRC. */
export function setPageFlags(page: Buffer, flags: number): void {
  page[5] = page[5]! | flags;
  page.writeUInt32LE(0, 22);
  page.writeUInt32LE(oggCrc(page), 22);
}
