/**
 * The look-back ring of one line: the last `capacity` sample frames of its channels (interleaved when a
 * line has two), in shared memory so encoder workers read it without a copy through the main thread.
 *
 * One writer (the capture side on the main thread), any number of readers (encoder workers). Positions
 * are absolute frame counts since capture began (the line's sample clock); the writer publishes its
 * position after the samples, so a reader never sees a frame before it is written. A reader that falls
 * more than `capacity` frames behind gets `overrun` instead of overwritten audio.
 */
export interface LineRingHandle {
  readonly samples: SharedArrayBuffer;
  readonly state: SharedArrayBuffer;
  readonly capacity: number;
  readonly channels: number;
}

export class LineRing {
  readonly capacity: number;
  readonly channels: number;
  private readonly samples: Int16Array;
  /** [0]: frames written so far (the write position). */
  private readonly state: BigInt64Array;

  constructor(handleOrCapacity: LineRingHandle | number, channels = 1) {
    if (typeof handleOrCapacity === 'number') {
      this.capacity = handleOrCapacity;
      this.channels = channels;
      this.samples = new Int16Array(new SharedArrayBuffer(handleOrCapacity * channels * 2));
      this.state = new BigInt64Array(new SharedArrayBuffer(8));
    } else {
      this.capacity = handleOrCapacity.capacity;
      this.channels = handleOrCapacity.channels;
      this.samples = new Int16Array(handleOrCapacity.samples);
      this.state = new BigInt64Array(handleOrCapacity.state);
    }
  }

  /** What a worker needs to open the same ring (postMessage shares, not copies, the buffers). */
  handle(): LineRingHandle {
    return { samples: this.samples.buffer as SharedArrayBuffer, state: this.state.buffer as SharedArrayBuffer, capacity: this.capacity, channels: this.channels };
  }

  get writePosition(): number {
    return Number(Atomics.load(this.state, 0));
  }

  /** Oldest frame still held. */
  get oldestPosition(): number {
    return Math.max(0, this.writePosition - this.capacity);
  }

  /**
   * Appends `frames` frames taken from an interleaved card buffer: frame f, line channel c is
   * `src[(srcStart + f) * srcStride + srcChannels[c]]`. Null `src` appends silence (a gap).
   */
  writeFrom(src: Int16Array | null, srcStart: number, frames: number, srcStride: number, srcChannels: readonly number[]): void {
    let pos = this.writePosition;
    const ch = this.channels;
    const cap = this.capacity;
    const out = this.samples;
    for (let f = 0; f < frames; f++) {
      const base = (pos % cap) * ch;
      if (src === null) {
        for (let c = 0; c < ch; c++) out[base + c] = 0;
      } else {
        const s = (srcStart + f) * srcStride;
        for (let c = 0; c < ch; c++) out[base + c] = src[s + srcChannels[c]!]!;
      }
      pos++;
    }
    Atomics.store(this.state, 0, BigInt(pos));
  }

  /**
   * Copies frames [from, from + frames) into `out` (interleaved). Returns false when any of them has been
   * overwritten (the reader fell behind) or is not yet written.
   */
  read(from: number, frames: number, out: Int16Array): boolean {
    const before = this.writePosition;
    if (from < before - this.capacity || from + frames > before) return false;
    const ch = this.channels;
    const cap = this.capacity;
    for (let f = 0; f < frames; f++) {
      const base = ((from + f) % cap) * ch;
      for (let c = 0; c < ch; c++) out[f * ch + c] = this.samples[base + c]!;
    }
    // The writer may have lapped us while we copied.
    return from >= this.writePosition - this.capacity;
  }
}
