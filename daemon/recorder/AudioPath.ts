import { EventEmitter } from 'node:events';
import type { Logger } from 'pino';
import type { CardConfig, Config } from '../config/Config.js';
import type { CaptureDevice } from '../capture/CaptureDevice.js';
import { CardReader, type Gap } from '../capture/CardReader.js';
import { VirtualCard } from '../capture/VirtualCard.js';
import { DEFAULT_SPEECH } from '../capture/defaultSpeech.js';
import { LineRing } from '../ring/LineRing.js';
import { EncoderPool } from '../encode/EncoderPool.js';
import type { EncodeResult } from '../encode/messages.js';

interface LineState {
  id: string;
  card: CardState;
  ring: LineRing;
  channels: number;
}

interface CardState {
  config: CardConfig;
  device: CaptureDevice;
  reader: CardReader;
  gaps: Gap[];
  faulted: boolean;
  droppedFrames: number;
  retry?: NodeJS.Timeout | undefined;
}

/** A future `at` closer than this to now is waited for, not clamped (PBX and host clocks differ a little). */
const FUTURE_TOLERANCE_MS = 1000;
/** How far inside the ring's oldest frame a clamped start lands. */
const OLDEST_MARGIN_MS = 500;
const GAPS_KEPT = 1000;
const REOPEN_MS = 5000;

export class UnknownLineError extends Error {
  constructor(readonly line: string) {
    super(`unknown line ${line}`);
    this.name = 'UnknownLineError';
  }
}

/**
 * The audio path's front door: cards, their readers, the line rings and the encoder workers. It knows no
 * calls, users or rules; it is told "record line L from frame S as R into file F" and "stop R at frame E".
 */
export class AudioPath extends EventEmitter {
  private readonly cards = new Map<string, CardState>();
  private readonly lines = new Map<string, LineState>();
  private pool: EncoderPool | null = null;
  private stopping = false;

  constructor(private readonly cfg: Config, private readonly log: Logger) {
    super();
  }

  async start(): Promise<void> {
    const portaudioCards = this.cfg.cards.filter((c) => c.backend === 'portaudio').length;
    const pool = Number(process.env.UV_THREADPOOL_SIZE ?? 4);
    if (portaudioCards > 0 && pool < portaudioCards + 4) {
      // Each open naudiodon stream parks a threadpool thread for good; fs and LevelDB need the rest.
      this.log.warn({ UV_THREADPOOL_SIZE: pool, portaudioCards }, `set UV_THREADPOOL_SIZE to at least ${portaudioCards + 4} (PortAudio cards + 4)`);
    }
    this.pool = new EncoderPool(this.cfg.encode.workers);
    for (const card of this.cfg.cards) {
      const device = await openDevice(card);
      const lines = this.cfg.lines.filter((l) => l.card === card.id);
      const rings = lines.map((l) => ({ id: l.id, channels: l.channels, ring: new LineRing(Math.ceil(this.cfg.ring.seconds * card.sampleRate), l.channels.length) }));
      const reader = new CardReader(device, rings);
      const state: CardState = { config: card, device, reader, gaps: [], faulted: false, droppedFrames: 0 };
      reader.on('gap', (gap: Gap) => {
        state.gaps.push(gap);
        state.droppedFrames += gap.frames;
        if (state.gaps.length > GAPS_KEPT) state.gaps.shift();
        this.log.warn({ card: card.id, gapMs: Math.round(gap.ms) }, 'audio gap: capture lost audio, filled with silence');
        this.emit('gap', card.id, gap.ms);
      });
      device.on('error', (err) => {
        state.faulted = true;
        this.log.error({ card: card.id, err: err.message }, 'capture device fault: reopening every 5 s');
        this.emit('deviceFault', card.id, err);
        this.reopenLater(state);
      });
      this.cards.set(card.id, state);
      for (const r of rings) this.lines.set(r.id, { id: r.id, card: state, ring: r.ring, channels: r.channels.length });
      await device.start();
      this.log.info({ card: card.id, backend: card.backend, channels: card.channels, sampleRate: card.sampleRate }, 'capture started');
    }
  }

  /**
   * A faulted card is reopened until it works again. Its reader keeps the sample clock, so the time it
   * was away comes back as a gap of that length and later audio keeps its true time.
   */
  private reopenLater(state: CardState): void {
    if (this.stopping) return;
    state.retry = setTimeout(() => {
      state.retry = undefined;
      state.device.start().then(
        () => {
          state.faulted = false;
          this.log.warn({ card: state.config.id }, 'capture device reopened');
        },
        (err: Error) => {
          this.log.error({ card: state.config.id, err: err.message }, 'capture device still failing');
          this.reopenLater(state);
        },
      );
    }, REOPEN_MS);
    state.retry.unref();
  }

  async stop(): Promise<void> {
    this.stopping = true;
    for (const card of this.cards.values()) {
      clearTimeout(card.retry);
      await card.device.stop();
      card.reader.close();
    }
    await this.pool?.close();
    this.pool = null;
  }

  hasLine(id: string): boolean {
    return this.lines.has(id);
  }

  lineIds(): string[] {
    return [...this.lines.keys()];
  }

  lineInfo(id: string): { sampleRate: number; channels: number } {
    const line = this.line(id);
    return { sampleRate: line.card.config.sampleRate, channels: line.channels };
  }

  /**
   * The frame of line `id` captured at wall time `wallMs`, clamped into what the ring holds (the past it
   * still has, up to a little of the future): `clamped` says it had to be moved.
   */
  frameAt(id: string, wallMs: number): { frame: number; clamped: boolean } {
    const line = this.line(id);
    const clock = line.card.reader.clock;
    const write = line.ring.writePosition;
    if (!clock.isAnchored) return { frame: write, clamped: true };
    const want = Math.round(clock.frameAt(wallMs));
    const latest = write + Math.round((FUTURE_TOLERANCE_MS * clock.sampleRate) / 1000);
    // Frame p is overwritten when the writer reaches p + capacity: a worker must get there first, so a
    // start keeps a margin from that moment.
    const margin = Math.round((OLDEST_MARGIN_MS * clock.sampleRate) / 1000);
    const oldest = Math.max(0, write - line.ring.capacity + margin);
    if (want < oldest) return { frame: oldest, clamped: true };
    if (want > latest) return { frame: write, clamped: true };
    return { frame: want, clamped: false };
  }

  /** The line's current write position: the newest frame captured. */
  nowFrame(id: string): number {
    return this.line(id).ring.writePosition;
  }

  wallAt(id: string, frame: number): number {
    const clock = this.line(id).card.reader.clock;
    // Before the card's first audio there is no mapping yet: the only frame there is, is now.
    return clock.isAnchored ? clock.wallAt(frame) : Date.now();
  }

  /** Gaps on the line's card within [from, to). */
  gaps(id: string, from: number, to: number): Gap[] {
    return this.line(id).card.gaps.filter((g) => g.frame < to && g.frame + g.frames > from);
  }

  record(job: { id: string; line: string; startFrame: number; path: string; serial: number; key: Buffer }): Promise<EncodeResult> {
    const line = this.line(job.line);
    return this.pool!.start({
      id: job.id,
      path: job.path,
      ring: line.ring.handle(),
      sampleRate: line.card.config.sampleRate,
      startFrame: job.startFrame,
      bitrate: this.cfg.encode.bitrate,
      complexity: this.cfg.encode.complexity,
      pageFlushMs: this.cfg.recording.pageFlushMs,
      holdMs: this.cfg.recording.lateEndMs,
      serial: job.serial,
      key: job.key,
    });
  }

  /** Ends recording `id` at `endFrame`; `force` finishes with the audio the ring has (shutting down). */
  stopRecording(id: string, endFrame: number, force = false): void {
    this.pool?.stop(id, endFrame, force);
  }

  /** Seconds of audio the slowest recording's encoder is behind capture. */
  get encoderLagS(): number {
    return this.pool?.lagS ?? 0;
  }

  /** Told of each encoder pump's duration (seconds). */
  set onEncoderPump(fn: (seconds: number) => void) {
    if (this.pool) this.pool.onPump = fn;
  }

  /** Told of frames encoded (about once a second per worker). */
  set onFramesEncoded(fn: (frames: number) => void) {
    if (this.pool) this.pool.onEncoded = fn;
  }

  /** How much of the look-back ring the slowest encoder is using: near 1, audio is about to be lost. */
  get ringFill(): number {
    return Math.min(1, this.encoderLagS / this.cfg.ring.seconds);
  }

  get activeRecordings(): number {
    return this.pool?.active ?? 0;
  }

  cardStatus(): Array<{ id: string; backend: string; framesCaptured: number; gaps: number; faulted: boolean }> {
    return [...this.cards.values()].map((c) => ({ id: c.config.id, backend: c.config.backend, framesCaptured: c.reader.framesReceived, gaps: c.gaps.length, faulted: c.faulted }));
  }

  /** Frames lost to gaps (filled with silence) per card since start. */
  droppedFrames(): Array<{ id: string; frames: number }> {
    return [...this.cards.values()].map((c) => ({ id: c.config.id, frames: c.droppedFrames }));
  }

  /** For tests and the demo: the virtual card behind a line, if it is one. */
  deviceOf(cardId: string): CaptureDevice | undefined {
    return this.cards.get(cardId)?.device;
  }

  private line(id: string): LineState {
    const line = this.lines.get(id);
    if (!line) throw new UnknownLineError(id);
    return line;
  }
}

async function openDevice(card: CardConfig): Promise<CaptureDevice> {
  if (card.backend === 'virtual') {
    return new VirtualCard({ id: card.id, channels: card.channels, sampleRate: card.sampleRate, speech: card.speech ?? DEFAULT_SPEECH, readMs: card.readMs });
  }
  // Loaded only when configured: naudiodon installs a process-wide segfault handler when it loads.
  const { PortAudioCard } = await import('../capture/PortAudioCard.js');
  return new PortAudioCard({
    id: card.id,
    device: card.device!,
    channels: card.channels,
    sampleRate: card.sampleRate,
    framesPerBuffer: card.framesPerBuffer,
    maxQueue: card.maxQueue,
    readMs: card.readMs,
  });
}
