import { createRequire } from 'node:module';

const require = createRequire(import.meta.url);
const { OpusEncoder } = require('@discordjs/opus') as typeof import('@discordjs/opus');

// libopus request numbers (opus_defines.h).
const OPUS_SET_APPLICATION = 4000;
const OPUS_APPLICATION_VOIP = 2048;
const OPUS_SET_COMPLEXITY = 4010;
const OPUS_SET_FORCE_CHANNELS = 4022;

/** libopus 1.3.1's lookahead is 2.5 ms + 4 ms at every rate: 312 samples at 48 kHz. */
export const PRE_SKIP_48K = 312;

/**
 * One libopus encoder configured for speech: VOIP mode, 20 ms frames, the given bitrate per channel.
 * A 2-channel encoder is forced to code two channels: at low bitrates libopus would otherwise fold a
 * split line into mono and leak each party into the other's channel.
 */
export class OpusFrameEncoder {
  readonly frameSize: number;
  private readonly encoder: InstanceType<typeof OpusEncoder>;

  constructor(readonly sampleRate: number, readonly channels: number, bitratePerChannel: number, complexity: number) {
    this.frameSize = sampleRate / 50;
    this.encoder = new OpusEncoder(sampleRate, channels);
    this.encoder.applyEncoderCTL(OPUS_SET_APPLICATION, OPUS_APPLICATION_VOIP);
    this.encoder.applyEncoderCTL(OPUS_SET_COMPLEXITY, complexity);
    if (channels === 2) this.encoder.applyEncoderCTL(OPUS_SET_FORCE_CHANNELS, 2);
    this.encoder.setBitrate(bitratePerChannel * channels);
  }

  /** Encodes one 20 ms frame of interleaved samples. */
  encode(frame: Int16Array): Buffer {
    return this.encoder.encode(Buffer.from(frame.buffer, frame.byteOffset, frame.byteLength));
  }
}
