import { EventEmitter } from 'node:events';
import { performance } from 'node:perf_hooks';
import { CaptureError, type CaptureDevice } from './CaptureDevice.js';
import { readWav } from './wav.js';

export interface VirtualCardOptions {
  id: string;
  channels: number;
  sampleRate: number;
  /** One source per channel, cycled: `file.wav` or `file.wav#N` for channel N of a multi-channel file. */
  speech: string[];
  /** How often a chunk is delivered, like a PortAudio read. */
  readMs: number;
  /** What the card itself buffers while nobody reads (like naudiodon's queue); older audio is lost. */
  bufferMs?: number;
  /** Silence between repeats of a channel's speech. */
  pauseMs?: number;
}

/**
 * A software telephony card: each channel plays real recorded speech in real time, in a loop with
 * pauses. It keeps the CaptureDevice contract, including a card's buffer: a late reader gets the audio it
 * missed (up to `bufferMs`), so a blocked main thread loses nothing, while `stall(ms)` drops audio as a
 * failing device does.
 */
export class VirtualCard extends EventEmitter implements CaptureDevice {
  readonly id: string;
  readonly channels: number;
  readonly sampleRate: number;
  private readonly tracks: Int16Array[];
  private timer: NodeJS.Timeout | null = null;
  private startedAt = 0;
  /** Frames produced by the card's clock so far (delivered or dropped). */
  private produced = 0;
  private stalledUntil = 0;

  constructor(private readonly opts: VirtualCardOptions) {
    super();
    this.id = opts.id;
    this.channels = opts.channels;
    this.sampleRate = opts.sampleRate;
    if (opts.speech.length === 0) throw new CaptureError('BAD_FORMAT', `virtual card ${opts.id}: no speech files`, opts.id);
    const pause = new Int16Array(Math.round(((opts.pauseMs ?? 1500) * opts.sampleRate) / 1000));
    this.tracks = Array.from({ length: opts.channels }, (_, ch) => {
      const spec = opts.speech[ch % opts.speech.length]!;
      const track = loadTrack(spec, opts.sampleRate, opts.id);
      // Stagger channels that share a file so no two lines carry the same audio at the same time.
      // (A golden-ratio step, so the offsets never repeat however many channels share a file.)
      const shift = Math.floor(Math.floor(ch / opts.speech.length) * track.length * 0.381966) % track.length;
      const out = new Int16Array(track.length + pause.length);
      out.set(track.subarray(shift));
      out.set(track.subarray(0, shift), track.length - shift);
      return out;
    });
  }

  async start(): Promise<void> {
    if (this.timer) return;
    this.startedAt = performance.now();
    this.produced = 0;
    this.timer = setInterval(() => this.tick(), this.opts.readMs);
  }

  async stop(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
  }

  /**
   * The frame this card's clock was at when the monotonic clock (`performance.now()`) read `monoMs`:
   * the ground truth a real card cannot tell, against which the daemon's own mapping can be checked.
   */
  frameAtMonotonic(monoMs: number): number {
    return ((monoMs - this.startedAt) * this.sampleRate) / 1000;
  }

  /** Simulates a device fault: for `ms` from now the card produces nothing and that audio is lost. */
  stall(ms: number): void {
    this.stalledUntil = performance.now() + ms;
  }

  /** Simulates a card that dies (unplugged, driver fault): stops and reports, as PortAudioCard does. */
  fail(why: string): void {
    void this.stop();
    this.emit('error', new CaptureError('DEVICE_READ_FAILED', `${this.id}: read failed: ${why}`, this.id));
  }

  private tick(): void {
    const now = performance.now();
    const due = Math.floor(((now - this.startedAt) * this.sampleRate) / 1000);
    if (now < this.stalledUntil) {
      this.produced = due;
      return;
    }
    const buffer = Math.floor(((this.opts.bufferMs ?? 2500) * this.sampleRate) / 1000);
    if (due - this.produced > buffer) this.produced = due - buffer;
    const frames = due - this.produced;
    if (frames <= 0) return;
    const chunk = Buffer.allocUnsafe(frames * this.channels * 2);
    for (let f = 0; f < frames; f++) {
      const t = this.produced + f;
      for (let ch = 0; ch < this.channels; ch++) {
        const track = this.tracks[ch]!;
        chunk.writeInt16LE(track[t % track.length]!, (f * this.channels + ch) * 2);
      }
    }
    this.produced = due;
    this.emit('data', chunk);
  }
}

function loadTrack(spec: string, rate: number, cardId: string): Int16Array {
  const m = /^(.*)#(\d+)$/.exec(spec);
  const file = m ? m[1]! : spec;
  const pick = m ? Number(m[2]) : 0;
  let wav;
  try {
    wav = readWav(file);
  } catch (err) {
    throw new CaptureError('BAD_FORMAT', `virtual card ${cardId}: ${(err as Error).message}`, cardId);
  }
  if (pick >= wav.channels) throw new CaptureError('BAD_FORMAT', `virtual card ${cardId}: ${file} has no channel ${pick}`, cardId);
  const mono = new Int16Array(wav.samples.length / wav.channels);
  for (let i = 0; i < mono.length; i++) mono[i] = wav.samples[i * wav.channels + pick]!;
  if (wav.sampleRate === rate) return mono;
  return resampleLinear(mono, wav.sampleRate, rate);
}

/** Plain linear interpolation: enough for a demo source, not for measurement. */
function resampleLinear(src: Int16Array, from: number, to: number): Int16Array {
  const out = new Int16Array(Math.floor((src.length * to) / from));
  for (let i = 0; i < out.length; i++) {
    const x = (i * from) / to;
    const j = Math.floor(x);
    const a = src[j] ?? 0;
    const b = src[j + 1] ?? a;
    out[i] = Math.round(a + (b - a) * (x - j));
  }
  return out;
}
