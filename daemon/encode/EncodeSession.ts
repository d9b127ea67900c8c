import { performance } from 'node:perf_hooks';
import { FileSink } from '../store/FileSink.js';
import { HashSink } from '../store/HashSink.js';
import { SealSink } from '../store/sealed/SealSink.js';
import { OggOpusWriter } from '../store/ogg/OggOpusWriter.js';
import { LineRing } from '../ring/LineRing.js';
import { OpusFrameEncoder, PRE_SKIP_48K } from './OpusFrameEncoder.js';
import type { EncodeJob, EncodeResult } from './messages.js';

interface Packet {
  data: Buffer;
  /** First frame (line sample clock) the packet codes. */
  start: number;
}

const SAMPLES_48K_PER_PACKET = 960;
/** At most 0.5 s of audio per page, as the flush cadence gives: players expect short pages. */
const PAGE_PACKETS = 25;

/**
 * One recording inside an encoder worker. It reads 20 ms frames of its line from the shared ring, from
 * `startFrame` on, and encodes them as they arrive. Packets are held back `holdMs` before they go into
 * an Ogg page, because a page once written is never rewritten: an end signal that arrives late can
 * still drop the audio after its `at`. Every `pageFlushMs` the packets older than that go out as a
 * page and the file is synced, so a crash loses at most holdMs + pageFlushMs.
 */
export class EncodeSession {
  private readonly ring: LineRing;
  private readonly encoder: OpusFrameEncoder;
  private readonly hash: HashSink;
  private readonly storedHash: HashSink;
  private readonly ogg: OggOpusWriter;
  private readonly frame: Int16Array;
  private readonly size: number;
  /** The encoder's lookahead in line frames: the audio needed after the end for its last samples. */
  private readonly lookahead: number;
  private readonly ratio: number;
  private readonly holdFrames: number;
  private next: number;
  private pending: Packet[] = [];
  private written = 0;
  private endFrame: number | null = null;
  private force = false;
  private lastFlush = performance.now();
  private readonly overruns: Array<[number, number]> = [];
  private readonly peakMs: number[];

  constructor(private readonly job: EncodeJob) {
    this.ring = new LineRing(job.ring);
    this.encoder = new OpusFrameEncoder(job.sampleRate, this.ring.channels, job.bitrate, job.complexity);
    this.size = this.encoder.frameSize;
    this.ratio = 48000 / job.sampleRate;
    this.lookahead = PRE_SKIP_48K / this.ratio;
    this.holdFrames = Math.round((job.holdMs * job.sampleRate) / 1000);
    this.frame = new Int16Array(this.size * this.ring.channels);
    // Ogg -> hash of the plain stream -> seal (when keyed) -> hash of the stored bytes -> file.
    this.storedHash = new HashSink(new FileSink(job.path));
    this.hash = new HashSink(job.key ? new SealSink(this.storedHash, Buffer.from(job.key.buffer, job.key.byteOffset, job.key.byteLength)) : this.storedHash);
    this.ogg = new OggOpusWriter(this.hash, { channels: this.ring.channels, preSkip: PRE_SKIP_48K, inputSampleRate: job.sampleRate, outputGain: 0 }, job.serial);
    this.hash.flush();
    this.next = job.startFrame;
    this.peakMs = new Array<number>(this.ring.channels).fill(0);
  }

  /** Seconds of captured audio not yet encoded (0 when the recording is caught up). */
  get lagS(): number {
    return Math.max(0, this.ring.writePosition - this.next) / this.job.sampleRate;
  }

  /** The recording ends at `endFrame`; `force` finishes with what the ring has (capture is stopping). */
  stop(endFrame: number, force = false): void {
    this.endFrame = Math.max(endFrame, this.job.startFrame);
    this.force = force;
  }

  /** Encodes what is available; returns the result once the recording is complete. */
  pump(): EncodeResult | null {
    const available = this.ring.writePosition;
    const stopAt = this.endFrame === null ? Infinity : this.endFrame + this.lookahead;
    while (this.next + this.size <= available && this.next < stopAt) {
      if (this.ring.read(this.next, this.size, this.frame)) this.encodeFrame();
      else this.skipOverrun();
    }
    if (this.endFrame !== null && (this.next >= stopAt || this.force)) return this.finish();
    if (performance.now() - this.lastFlush >= this.job.pageFlushMs) this.flushOlderThan(available - this.holdFrames);
    return null;
  }

  /** Frames encoded so far (the worker reports the running sum). */
  framesEncoded = 0;

  private encodeFrame(): void {
    this.framesEncoded += this.size;
    this.trackLevel();
    this.pending.push({ data: this.encoder.encode(this.frame), start: this.next });
    this.next += this.size;
  }

  /** The loudest frame per channel so far (mean square): cheap, and enough to tell a dead line. */
  private trackLevel(): void {
    const ch = this.ring.channels;
    for (let c = 0; c < ch; c++) {
      let sum = 0;
      for (let i = c; i < this.frame.length; i += ch) sum += this.frame[i]! * this.frame[i]!;
      const ms = sum / (this.frame.length / ch);
      if (ms > this.peakMs[c]!) this.peakMs[c] = ms;
    }
  }

  /** The worker fell a whole ring behind: what was overwritten becomes silence, timing is kept. */
  private skipOverrun(): void {
    const behind = this.ring.oldestPosition + this.size - this.next;
    const frames = Math.max(1, Math.ceil(behind / this.size));
    this.overruns.push([this.next, frames * this.size]);
    this.frame.fill(0);
    for (let i = 0; i < frames; i++) this.encodeFrame();
  }

  private flushOlderThan(frame: number): void {
    let n = 0;
    while (n < this.pending.length && this.pending[n]!.start + this.size <= frame) n++;
    if (n > 0) {
      // A backlog (a late start's look-back) goes out as several pages, none over PAGE_PACKETS.
      for (const p of this.pending.splice(0, n)) {
        this.ogg.addPacket(p.data, SAMPLES_48K_PER_PACKET);
        if (this.ogg.pendingPackets >= PAGE_PACKETS) this.ogg.flushPage();
      }
      this.written += n;
      this.ogg.flushPage();
      this.hash.flush();
    }
    this.lastFlush = performance.now();
  }

  private finish(): EncodeResult {
    const end = this.endFrame!;
    const stopAt = end + this.lookahead;
    if (this.next < stopAt) {
      // Capture is stopping: take what the ring has, pad with silence to flush the lookahead.
      // Capture may still be writing: take at most one frame of what is there now.
      const have = Math.min(this.size, Math.max(0, this.ring.writePosition - this.next));
      this.frame.fill(0);
      if (have > 0) {
        const part = new Int16Array(have * this.ring.channels);
        if (this.ring.read(this.next, have, part)) this.frame.set(part);
      }
      this.encodeFrame();
      this.frame.fill(0);
      while (this.next < stopAt) this.encodeFrame();
    }
    // Packets that start after the lookahead past the end hold only audio after the end signal.
    const keep = this.pending.filter((p) => p.start < stopAt);
    const writtenGranule = BigInt(this.written * SAMPLES_48K_PER_PACKET);
    let finalGranule = BigInt(PRE_SKIP_48K + (end - this.job.startFrame) * this.ratio);
    let clampedEnd = false;
    if (keep.length === 0) {
      // Everything up to past the end was already written: end where the file ends.
      this.frame.fill(0);
      keep.push({ data: this.encoder.encode(this.frame), start: this.next });
    }
    if (finalGranule < writtenGranule) {
      finalGranule = writtenGranule;
      clampedEnd = true;
    }
    for (const p of keep) this.ogg.addPacket(p.data, SAMPLES_48K_PER_PACKET);
    this.ogg.finish(finalGranule);
    this.hash.close();
    this.pending = [];
    return {
      id: this.job.id,
      frames: Number(finalGranule - BigInt(PRE_SKIP_48K)) / this.ratio,
      audioBytes: this.hash.bytes,
      audioSha256: this.hash.sha256,
      storedBytes: this.storedHash.bytes,
      storedSha256: this.storedHash.sha256,
      finalGranule: finalGranule.toString(),
      overruns: this.overruns,
      peakDbfs: this.peakMs.map((ms) => (ms > 0 ? Math.max(-120, Math.round(10 * Math.log10(ms / (32768 * 32768)) * 10) / 10) : -120)),
      clampedEnd,
    };
  }
}
