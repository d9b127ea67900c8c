import { readFileSync } from 'node:fs';

export interface Pcm {
  sampleRate: number;
  channels: number;
  /** Interleaved signed 16-bit samples. */
  samples: Int16Array;
}

/** Reads a PCM WAV file (16-bit, or 8-bit mu-law as some telephone recordings are). */
export function readWav(path: string): Pcm {
  return parseWav(readFileSync(path), path);
}

export function parseWav(buf: Buffer, name = 'WAV data'): Pcm {
  if (buf.toString('ascii', 0, 4) !== 'RIFF' || buf.toString('ascii', 8, 12) !== 'WAVE') throw new Error(`${name}: not a RIFF/WAVE file`);
  let off = 12;
  let format = 0;
  let channels = 0;
  let sampleRate = 0;
  let bits = 0;
  while (off + 8 <= buf.length) {
    const id = buf.toString('ascii', off, off + 4);
    const size = buf.readUInt32LE(off + 4);
    const body = off + 8;
    if (id === 'fmt ') {
      format = buf.readUInt16LE(body);
      channels = buf.readUInt16LE(body + 2);
      sampleRate = buf.readUInt32LE(body + 4);
      bits = buf.readUInt16LE(body + 14);
      if (format === 0xfffe) format = buf.readUInt16LE(body + 24);
    } else if (id === 'data') {
      const end = Math.min(buf.length, body + size);
      if (format === 1 && bits === 16) {
        const samples = new Int16Array((end - body) >> 1);
        for (let i = 0; i < samples.length; i++) samples[i] = buf.readInt16LE(body + i * 2);
        return { sampleRate, channels, samples };
      }
      if (format === 7 && bits === 8) {
        const samples = new Int16Array(end - body);
        for (let i = 0; i < samples.length; i++) samples[i] = ulawToLinear(buf[body + i]!);
        return { sampleRate, channels, samples };
      }
      throw new Error(`${name}: unsupported WAV format ${format}/${bits}-bit`);
    }
    off = body + size + (size & 1);
  }
  throw new Error(`${name}: no data chunk`);
}

function ulawToLinear(u: number): number {
  u = ~u & 0xff;
  const t = (((u & 0x0f) << 3) + 0x84) << ((u & 0x70) >> 4);
  return u & 0x80 ? 0x84 - t : t - 0x84;
}

/** A 16-bit PCM WAV file image. */
export function wavBytes(pcm: Pcm): Buffer {
  const data = pcm.samples.length * 2;
  const buf = Buffer.alloc(44 + data);
  buf.write('RIFF', 0, 'ascii');
  buf.writeUInt32LE(36 + data, 4);
  buf.write('WAVEfmt ', 8, 'ascii');
  buf.writeUInt32LE(16, 16);
  buf.writeUInt16LE(1, 20);
  buf.writeUInt16LE(pcm.channels, 22);
  buf.writeUInt32LE(pcm.sampleRate, 24);
  buf.writeUInt32LE(pcm.sampleRate * pcm.channels * 2, 28);
  buf.writeUInt16LE(pcm.channels * 2, 32);
  buf.writeUInt16LE(16, 34);
  buf.write('data', 36, 'ascii');
  buf.writeUInt32LE(data, 40);
  for (let i = 0; i < pcm.samples.length; i++) buf.writeInt16LE(pcm.samples[i]!, 44 + i * 2);
  return buf;
}
