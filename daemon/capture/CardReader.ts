import { EventEmitter } from 'node:events';
import { performance } from 'node:perf_hooks';
import type { CaptureDevice } from './CaptureDevice.js';
import { SampleClock } from './SampleClock.js';
import type { LineRing } from '../ring/LineRing.js';

export interface CardLine {
  id: string;
  /** The card channels of this line: [mixed] or [caller, adviser]. */
  channels: readonly number[];
  ring: LineRing;
}

export interface Gap {
  /** Frame position on the card's (and so each line's) sample clock where silence was put in. */
  frame: number;
  frames: number;
  /** Wall time (ms) where the audio went missing, and its length. */
  atMs: number;
  ms: number;
}

export interface CardReaderOptions {
  /** A deficit beyond this is suspected audio loss (default: 250 ms). */
  gapThresholdMs?: number;
  /** How long a suspicion waits for a late burst before it is judged (default: 200 ms). */
  settleMs?: number;
}

/**
 * Turns one card's byte stream into per-line samples on one sample clock: carries partial frames over
 * to the next chunk, splits channels into the lines' rings, and fills lost audio with silence of the
 * same length so every later frame keeps its true time.
 *
 * A late chunk is not yet a gap: after a blocked main thread the card's queue delivers what it held in a
 * burst. So a chunk that arrives with a large deficit is held for `settleMs`; if the deficit is still
 * there then, the audio was lost and the held chunks follow a gap of silence.
 */
export class CardReader extends EventEmitter {
  readonly clock: SampleClock;
  /** Frames written to every line of this card (the card's sample clock). */
  private received = 0;
  private carry: Buffer = Buffer.alloc(0);
  private held: Int16Array[] = [];
  /** When the newest held chunk arrived: its last frame was captured then, so the deficit is judged there. */
  private heldArrival = 0;
  private settleTimer: NodeJS.Timeout | null = null;
  private readonly frameBytes: number;
  private readonly thresholdFrames: number;
  private readonly settleMs: number;
  private readonly onData = (chunk: Buffer): void => this.accept(chunk);

  constructor(readonly device: CaptureDevice, readonly lines: readonly CardLine[], opts: CardReaderOptions = {}) {
    super();
    this.clock = new SampleClock(device.sampleRate);
    this.frameBytes = device.channels * 2;
    this.thresholdFrames = ((opts.gapThresholdMs ?? 250) * device.sampleRate) / 1000;
    this.settleMs = opts.settleMs ?? 200;
    device.on('data', this.onData);
  }

  get framesReceived(): number {
    return this.received;
  }

  close(): void {
    this.device.off('data', this.onData);
    if (this.settleTimer) clearTimeout(this.settleTimer);
    this.settleTimer = null;
    this.flushHeld();
  }

  private accept(chunk: Buffer): void {
    const data = this.carry.length > 0 ? Buffer.concat([this.carry, chunk]) : chunk;
    const whole = data.length - (data.length % this.frameBytes);
    this.carry = Buffer.from(data.subarray(whole));
    if (whole === 0) return;
    // A view when the bytes are 2-aligned (the usual case: fresh chunks), else an aligned copy. (s16le on a
    // little-endian host: x86-64 and ARM alike.)
    const samples = data.byteOffset % 2 === 0 ? new Int16Array(data.buffer, data.byteOffset, whole / 2) : copyAligned(data, whole);
    const frames = samples.length / this.device.channels;
    const now = performance.now();
    if (!this.clock.isAnchored) {
      this.clock.anchor(frames, now, Date.now());
      this.write(samples);
      return;
    }
    if (this.held.length > 0) {
      this.held.push(samples);
      this.heldArrival = now;
      return;
    }
    const deficit = this.clock.deficit(this.received + frames, now);
    if (deficit > this.thresholdFrames) {
      this.held.push(samples);
      this.heldArrival = now;
      this.settleTimer = setTimeout(() => this.settle(), this.settleMs);
      return;
    }
    this.clock.track(deficit, now);
    this.write(samples);
  }

  private settle(): void {
    this.settleTimer = null;
    const heldFrames = this.held.reduce((n, s) => n + s.length / this.device.channels, 0);
    const deficit = Math.round(this.clock.deficit(this.received + heldFrames, this.heldArrival));
    if (deficit > this.thresholdFrames) {
      const gap: Gap = {
        frame: this.received,
        frames: deficit,
        atMs: this.clock.wallAt(this.received),
        ms: (deficit * 1000) / this.device.sampleRate,
      };
      for (const line of this.lines) line.ring.writeFrom(null, 0, deficit, 0, line.channels);
      this.received += deficit;
      this.emit('gap', gap);
    }
    this.flushHeld();
  }

  private flushHeld(): void {
    const held = this.held;
    this.held = [];
    for (const samples of held) this.write(samples);
  }

  private write(samples: Int16Array): void {
    const frames = samples.length / this.device.channels;
    for (const line of this.lines) line.ring.writeFrom(samples, 0, frames, this.device.channels, line.channels);
    this.received += frames;
  }
}

function copyAligned(data: Buffer, bytes: number): Int16Array {
  const out = new Int16Array(bytes / 2);
  for (let i = 0; i < out.length; i++) out[i] = data.readInt16LE(i * 2);
  return out;
}
