import { createRequire } from 'node:module';
import { readOggOpus } from './OggReader.js';
import type { Pcm } from '../../capture/wav.js';

const require = createRequire(import.meta.url);
const { OpusEncoder } = require('@discordjs/opus') as typeof import('@discordjs/opus');

/**
 * Decodes an Ogg Opus file to PCM at `sampleRate` (default: the rate it was captured at), dropping the
 * pre-skip and trimming the end to the final granule, as RFC 7845 says a player must.
 */
export function decodeOggOpus(bytes: Uint8Array, sampleRate?: number): Pcm {
  const ogg = readOggOpus(bytes);
  const rate = sampleRate ?? (([8000, 12000, 16000, 24000, 48000].includes(ogg.head.inputSampleRate) ? ogg.head.inputSampleRate : 48000));
  const ratio = 48000 / rate;
  const ch = ogg.head.channels;
  const decoder = new OpusEncoder(rate, ch);
  const parts: Buffer[] = [];
  for (const p of ogg.packets) parts.push(decoder.decode(p));
  const all = Buffer.concat(parts);
  const decoded = new Int16Array(all.buffer, all.byteOffset, all.length / 2);
  const skip = Math.round(ogg.head.preSkip / ratio);
  const total = Math.max(0, Math.round(Number(ogg.finalGranule - BigInt(ogg.head.preSkip)) / ratio));
  const samples = Int16Array.from(decoded.subarray(skip * ch, Math.min(decoded.length, (skip + total) * ch)));
  return { sampleRate: rate, channels: ch, samples };
}
