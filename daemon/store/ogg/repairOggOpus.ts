import { buildPage, HEADER_BOS, HEADER_EOS, setPageFlags } from './page.js';
import { scanPages } from './OggReader.js';
import { opusHeadPacket, opusTagsPacket, parseOpusHead, type OpusHead } from './opusHeaders.js';
import { VENDOR } from './OggOpusWriter.js';

export interface RepairResult {
  bytes: Buffer;
  /** Bytes cut from the end (a torn page). */
  cutBytes: number;
  /** Granule of the new last page: pre-skip + the audio kept, at 48 kHz. */
  finalGranule: bigint;
  /** True when no audio page survived and the stream was rebuilt from its parameters. */
  rebuilt: boolean;
}

/**
 * Makes a valid, shorter Ogg Opus file out of one cut anywhere (a crash mid-write): keeps the intact
 * pages and marks the last one end-of-stream. Pages are only ever cut, never re-encoded. When not even
 * one audio page survived, the stream is rebuilt from `fallback` with a single lost-frame packet, so a
 * player shows an empty recording instead of an error.
 */
export function repairOggOpus(bytes: Uint8Array, fallback: OpusHead): RepairResult {
  const { pages, validLength } = scanPages(bytes);
  const cutBytes = bytes.length - validLength;
  if (pages.length >= 3) {
    const out = Buffer.from(bytes.subarray(0, validLength));
    const last = pages[pages.length - 1]!;
    if (!(last.headerType & HEADER_EOS)) {
      const page = out.subarray(last.offset, last.offset + last.length);
      setPageFlags(page, HEADER_EOS);
    }
    return { bytes: out, cutBytes, finalGranule: last.granule, rebuilt: false };
  }
  let head = fallback;
  if (pages.length >= 1) {
    const first = pages[0]!;
    const nseg = bytes[first.offset + 26]!;
    head = parseOpusHead(bytes.subarray(first.offset + 27 + nseg, first.offset + first.length)) ?? fallback;
  }
  // The serial survives in any cut that reached byte 18 of the first page.
  const serial = pages[0]?.serial ?? (bytes.length >= 18 && Buffer.from(bytes.subarray(0, 4)).toString('ascii') === 'OggS' ? Buffer.from(bytes.subarray(14, 18)).readUInt32LE(0) : 1);
  // One 20 ms frame of nothing (TOC code 0, zero-length frame: decoders conceal it as a lost packet).
  const config = 1; // SILK narrowband, 20 ms
  const toc = Buffer.from([(config << 3) | ((head.channels === 2 ? 1 : 0) << 2)]);
  const finalGranule = 960n;
  const out = Buffer.concat([
    buildPage({ headerType: HEADER_BOS, granule: 0n, serial, sequence: 0 }, [opusHeadPacket(head)]),
    buildPage({ headerType: 0, granule: 0n, serial, sequence: 1 }, [opusTagsPacket(VENDOR)]),
    buildPage({ headerType: HEADER_EOS, granule: finalGranule, serial, sequence: 2 }, [toc]),
  ]);
  return { bytes: out, cutBytes, finalGranule, rebuilt: true };
}
