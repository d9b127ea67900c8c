import type { ByteSink } from '../ByteSink.js';
import { opusHeadPacket, opusTagsPacket, type OpusHead } from './opusHeaders.js';
import { buildPage, HEADER_BOS, HEADER_EOS, lacingCount } from './page.js';

export const VENDOR = 'callrec (libopus 1.3.1)';

/**
 * Ogg Opus muxer (RFC 7845): OpusHead and OpusTags pages, then audio pages of whole packets. Granule
 * positions count 48 kHz samples including pre-skip; the last page carries end-of-stream and a granule
 * that trims the encoder's padding. The caller decides when a page is flushed (the crash-loss bound).
 */
export class OggOpusWriter {
  private sequence = 0;
  private pending: Buffer[] = [];
  private pendingLacing = 0;
  /** Granule after every packet added so far. */
  private granule = 0n;
  private finished = false;

  constructor(private readonly sink: ByteSink, private readonly head: OpusHead, private readonly serial: number) {
    this.sink.write(buildPage({ headerType: HEADER_BOS, granule: 0n, serial, sequence: this.sequence++ }, [opusHeadPacket(head)]));
    this.sink.write(buildPage({ headerType: 0, granule: 0n, serial, sequence: this.sequence++ }, [opusTagsPacket(VENDOR)]));
  }

  /** Queues one Opus packet lasting `samples48` samples at 48 kHz. */
  addPacket(packet: Buffer, samples48: number): void {
    if (this.finished) throw new Error('packet after end of stream');
    const lacing = lacingCount(packet.length);
    if (this.pendingLacing + lacing > 255) this.flushPage();
    this.pending.push(packet);
    this.pendingLacing += lacing;
    this.granule += BigInt(samples48);
  }

  get pendingPackets(): number {
    return this.pending.length;
  }

  /** Writes the queued packets as one page (nothing when none are queued). */
  flushPage(): void {
    if (this.pending.length === 0) return;
    this.writePage(0, this.granule);
  }

  /**
   * Ends the stream: the queued packets (at least one) go out on a page flagged end-of-stream whose
   * granule is `finalGranule` (pre-skip + the real length at 48 kHz), which trims the padding.
   */
  finish(finalGranule: bigint): void {
    if (this.pending.length === 0) throw new Error('end of stream needs at least one queued packet');
    if (finalGranule > this.granule) throw new RangeError(`final granule ${finalGranule} beyond the audio written (${this.granule})`);
    this.writePage(HEADER_EOS, finalGranule);
    this.finished = true;
  }

  private writePage(headerType: number, granule: bigint): void {
    this.sink.write(buildPage({ headerType, granule, serial: this.serial, sequence: this.sequence++ }, this.pending));
    this.pending = [];
    this.pendingLacing = 0;
  }
}
