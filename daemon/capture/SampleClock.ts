/**
 * Maps a card's frame counter to time. The card's crystal, not the host, paces the frames; the host's
 * monotonic clock says how many frames should have arrived by now. The difference ("deficit") is how
 * we see lost audio: naudiodon reports overflows only on stdout, and its timestamps are whole seconds.
 * A slow drift between the two clocks (tens of ppm) is followed by `baseline`, so it is never taken
 * for a gap.
 *
 * A chunk reaches us after its last frame was captured, never before, and how much after varies (the
 * driver's buffering, a busy event loop, the scheduler). So the arrivals that came soonest say most about
 * the card's true time: `baseline` follows the smallest deficit of each second ("lucky chunk" filter,
 * as clock synchronisation does with packets), not the average. The first chunk, which anchors the
 * mapping, is often among the latest (cold code, a daemon still starting); in the first seconds the
 * baseline therefore takes every smaller deficit at once, so that anchor's lateness is gone within a
 * chunk or two instead of leaking out over a minute while calls are being cut by it.
 */
/** The filter's window: long enough to hold a lucky chunk, short next to any drift. */
const WINDOW_MS = 1000;
/** Windows after the anchor in which a smaller deficit is taken at once. */
const WARMUP_WINDOWS = 5;
/** The share of a window's smallest deficit the baseline takes: a time constant of about 10 s. */
const FOLLOW = 0.1;

export class SampleClock {
  private monoAtAnchor = 0;
  private wallAtAnchor = 0;
  private framesAtAnchor = 0;
  private baseline = 0;
  private anchored = false;
  /** The current window of the filter: when it began (monotonic ms) and the smallest deficit in it. */
  private windowStart = 0;
  private windowMin = Infinity;
  private windows = 0;

  constructor(readonly sampleRate: number) {}

  get isAnchored(): boolean {
    return this.anchored;
  }

  /** The first audio: `frames` frames have arrived at monotonic time `monoMs`, wall time `wallMs`. */
  anchor(frames: number, monoMs: number, wallMs: number): void {
    this.framesAtAnchor = frames;
    this.monoAtAnchor = monoMs;
    this.wallAtAnchor = wallMs;
    this.baseline = 0;
    this.anchored = true;
    this.windowStart = monoMs;
    this.windowMin = Infinity;
    this.windows = 0;
  }

  /** Frames expected by `monoMs` minus frames received (positive: audio missing). */
  deficit(received: number, monoMs: number): number {
    const expected = this.framesAtAnchor + ((monoMs - this.monoAtAnchor) * this.sampleRate) / 1000;
    return expected - received - this.baseline;
  }

  /**
   * Takes one in-bounds reading of `deficit` (as returned by `deficit()`, so relative to the baseline)
   * at monotonic time `monoMs`. While warming up, a reading below the baseline moves it there at once;
   * after that each window's smallest reading pulls the baseline a share of the way, which follows a
   * drift of tens of ppm (well under a frame a second) without being pushed by late chunks.
   */
  track(deficit: number, monoMs: number): void {
    if (this.windows < WARMUP_WINDOWS) this.baseline += Math.min(0, deficit);
    else this.windowMin = Math.min(this.windowMin, deficit);
    if (monoMs - this.windowStart < WINDOW_MS) return;
    if (this.windows >= WARMUP_WINDOWS && Number.isFinite(this.windowMin)) this.baseline += this.windowMin * FOLLOW;
    this.windows++;
    this.windowStart = monoMs;
    this.windowMin = Infinity;
  }

  /** The frame (possibly fractional, possibly outside what was captured) captured at wall time `wallMs`. */
  frameAt(wallMs: number): number {
    return this.framesAtAnchor + ((wallMs - this.wallAtAnchor) * this.sampleRate) / 1000 - this.baseline;
  }

  /** Wall time (ms since the epoch) at which frame `frame` was captured. */
  wallAt(frame: number): number {
    return this.wallAtAnchor + ((frame - this.framesAtAnchor + this.baseline) * 1000) / this.sampleRate;
  }
}
