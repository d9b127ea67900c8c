import { EventEmitter } from 'node:events';
import { performance } from 'node:perf_hooks';
import type { DeviceInfo, IoStreamRead } from 'naudiodon';
import { CaptureError, type CaptureDevice } from './CaptureDevice.js';

export interface PortAudioCardOptions {
  id: string;
  /** PortAudio device name: exact match first, then substring. */
  device: string;
  channels: number;
  sampleRate: 8000 | 16000;
  /** Frames per PortAudio callback buffer: audio arrives in bursts of this size whatever readMs is. */
  framesPerBuffer: number;
  /** Callback buffers naudiodon queues while JS does not read; must hold >= MIN_QUEUE_S of audio. */
  maxQueue: number;
  /** Audio per JS read (one 'data' chunk), 1..100 ms. */
  readMs: number;
  /** No data for this long while open is reported as DEVICE_READ_FAILED (default 5000; first data can take 2 s). */
  stallMs?: number;
}

/** When naudiodon's queue is full it blocks PortAudio's callback and audio is lost: ride out main-thread stalls. */
export const MIN_QUEUE_S = 2;

type Naudiodon = typeof import('naudiodon');
let naudiodon: Promise<Naudiodon> | null = null;

/**
 * Loaded on first start only: naudiodon's index.js registers segfault-handler, which writes crash.log in
 * the cwd on a native crash. Its native code also printf()s to stdout (version, options, "input overflow"
 * warnings, "Finishing input" on quit), mixed into whatever else uses stdout. Both left as they are.
 */
function load(): Promise<Naudiodon> {
  naudiodon ??= import('naudiodon').then((m) => m.default);
  return naudiodon;
}

/**
 * A real capture card through PortAudio (naudiodon). Each open stream parks one libuv threadpool thread
 * in a blocking read, so size UV_THREADPOOL_SIZE for the number of cards plus fs/crypto work.
 */
export class PortAudioCard extends EventEmitter implements CaptureDevice {
  readonly id: string;
  readonly channels: number;
  readonly sampleRate: number;
  private stream: IoStreamRead | null = null;
  private starting: Promise<void> | null = null;
  private stopping: Promise<void> | null = null;
  private watchdog: NodeJS.Timeout | undefined;
  private lastData = 0;

  constructor(private readonly opts: PortAudioCardOptions) {
    super();
    validate(opts);
    this.id = opts.id;
    this.channels = opts.channels;
    this.sampleRate = opts.sampleRate;
  }

  start(): Promise<void> {
    this.starting ??= this.open().finally(() => (this.starting = null));
    return this.starting;
  }

  async stop(): Promise<void> {
    await this.starting?.catch(() => undefined);
    const s = this.stream;
    if (s) {
      this.stream = null; // from here on no 'data' is emitted
      clearInterval(this.watchdog);
      this.stopping = this.close(s);
    }
    await this.stopping;
  }

  private async open(): Promise<void> {
    await this.stopping;
    if (this.stream) return;
    const { id, device, channels, sampleRate, framesPerBuffer, maxQueue, readMs } = this.opts;
    const na = await load();
    let devices: DeviceInfo[];
    try {
      devices = na.getDevices();
    } catch (err) {
      throw new CaptureError('DEVICE_OPEN_FAILED', `${id}: PortAudio cannot list devices: ${String(err)}`, id);
    }
    const dev = pickDevice(devices, device, channels, id);
    let s: IoStreamRead | undefined;
    try {
      s = na.AudioIO({
        inOptions: {
          deviceId: dev.id,
          channelCount: channels,
          sampleFormat: na.SampleFormat16Bit,
          sampleRate,
          framesPerBuffer,
          maxQueue,
          highwaterMark: (sampleRate / 1000) * readMs * channels * 2,
          // true would close the stream on a mere input overflow.
          closeOnError: false,
        },
      });
      s.start();
    } catch (err) {
      if (s) await this.close(s);
      throw new CaptureError('DEVICE_OPEN_FAILED', `${id}: cannot open "${dev.name}" (${channels} ch, ${sampleRate} Hz): ${String(err)}`, id);
    }
    const stream = s;
    this.stream = stream;
    stream.on('data', (chunk: Buffer) => {
      if (this.stream !== stream) return;
      this.lastData = performance.now();
      this.emit('data', chunk);
    });
    stream.on('error', (err: unknown) => this.fault(stream, String(err)));
    // Only quit() ends the stream; an end while open means the reader gave up.
    stream.on('end', () => this.fault(stream, 'stream ended'));
    this.watch(stream);
  }

  /**
   * A dead device (unplugged card, killed sound server) raises no error through PortAudio/naudiodon: the
   * PortAudio thread ends and naudiodon's read waits forever. So a stall is the only sign of it.
   */
  private watch(stream: IoStreamRead): void {
    const stallMs = this.opts.stallMs ?? 5000;
    const every = Math.min(1000, stallMs / 2);
    let tick = (this.lastData = performance.now());
    this.watchdog = setInterval(() => {
      const now = performance.now();
      // A late tick means the main thread was blocked: data may be queued behind this timer.
      if (now - tick > 2 * every) this.lastData = now;
      tick = now;
      if (now - this.lastData > stallMs) this.fault(stream, `no data for ${Math.round(now - this.lastData)} ms`);
    }, every);
    this.watchdog.unref();
  }

  private fault(stream: IoStreamRead, why: string): void {
    if (this.stream !== stream) return;
    this.stream = null;
    clearInterval(this.watchdog);
    this.stopping = this.close(stream);
    this.emit('error', new CaptureError('DEVICE_READ_FAILED', `${this.id}: read failed: ${why}`, this.id));
  }

  /** quit('WAIT') releases the pending read and stops, closes and terminates PortAudio; abort() is broken in 2.3.6. */
  private close(s: IoStreamRead): Promise<void> {
    const p: Promise<void> = new Promise<void>((resolve) => s.quit(resolve)).finally(() => {
      if (this.stopping === p) this.stopping = null;
    });
    return p;
  }
}

function pickDevice(devices: DeviceInfo[], name: string, channels: number, id: string): DeviceInfo {
  const inputs = devices.filter((d) => d.maxInputChannels > 0);
  const fit = inputs.filter((d) => d.maxInputChannels >= channels);
  const dev = fit.find((d) => d.name === name) ?? fit.find((d) => d.name.includes(name));
  if (dev) return dev;
  const seen = inputs.map((d) => `"${d.name}" (${d.maxInputChannels} ch)`).join(', ') || 'none';
  throw new CaptureError('DEVICE_NOT_FOUND', `${id}: no input device "${name}" with >= ${channels} channels; input devices seen: ${seen}`, id);
}

function validate(o: PortAudioCardOptions): void {
  const bad = (msg: string) => new CaptureError('BAD_FORMAT', `${o.id}: ${msg}`, o.id);
  const posInt = (n: number) => Number.isInteger(n) && n > 0;
  if (!o.device) throw bad('device name is empty');
  if (!posInt(o.channels)) throw bad(`channels must be a positive integer, got ${o.channels}`);
  if (o.sampleRate !== 8000 && o.sampleRate !== 16000) throw bad(`sampleRate must be 8000 or 16000, got ${o.sampleRate}`);
  if (!posInt(o.framesPerBuffer)) throw bad(`framesPerBuffer must be a positive integer, got ${o.framesPerBuffer}`);
  if (!posInt(o.maxQueue)) throw bad(`maxQueue must be a positive integer, got ${o.maxQueue}`);
  if (!posInt(o.readMs) || o.readMs > 100) throw bad(`readMs must be an integer 1..100, got ${o.readMs}`);
  if (o.stallMs !== undefined && !(o.stallMs > 0)) throw bad(`stallMs must be positive, got ${o.stallMs}`);
  const held = (o.framesPerBuffer * o.maxQueue) / o.sampleRate;
  if (held < MIN_QUEUE_S) {
    const need = Math.ceil((MIN_QUEUE_S * o.sampleRate) / o.framesPerBuffer);
    throw bad(`framesPerBuffer*maxQueue holds ${held.toFixed(2)} s of audio; at least ${MIN_QUEUE_S} s is needed, or audio is lost when the main thread stalls (maxQueue >= ${need})`);
  }
}
