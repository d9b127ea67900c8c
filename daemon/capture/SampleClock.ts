/**
 * Maps a card's frame counter to time. The card's crystal, not the host, paces the frames; the host's
 * monotonic clock says how many frames should have arrived by now. The difference ("deficit") is how
 * we see lost audio: naudiodon reports overflows only on stdout, and its timestamps are whole seconds.
 * A slow drift between the two clocks (tens of ppm) is followed by `baseline`, so it is never taken
 * for a gap.
 */
export class SampleClock {
  private monoAtAnchor = 0;
  private wallAtAnchor = 0;
  private framesAtAnchor = 0;
  private baseline = 0;
  private anchored = false;

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
  }

  /** Frames expected by `monoMs` minus frames received (positive: audio missing). */
  deficit(received: number, monoMs: number): number {
    const expected = this.framesAtAnchor + ((monoMs - this.monoAtAnchor) * this.sampleRate) / 1000;
    return expected - received - this.baseline;
  }

  /** Follows slow clock drift with a small share of each in-bounds reading. */
  track(deficit: number): void {
    this.baseline += deficit * 0.002;
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
