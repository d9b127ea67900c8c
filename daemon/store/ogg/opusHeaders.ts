export interface OpusHead {
  channels: number;
  /** Samples at 48 kHz to discard at the start (the encoder's lookahead). */
  preSkip: number;
  /** The sample rate the audio was captured at (informational for decoders). */
  inputSampleRate: number;
  outputGain: number;
}

/** OpusHead, RFC 7845 section 5.1, channel mapping family 0 (mono or stereo). */
export function opusHeadPacket(h: OpusHead): Buffer {
  const b = Buffer.alloc(19);
  b.write('OpusHead', 0, 'ascii');
  b[8] = 1;
  b[9] = h.channels;
  b.writeUInt16LE(h.preSkip, 10);
  b.writeUInt32LE(h.inputSampleRate, 12);
  b.writeInt16LE(h.outputGain, 16);
  b[18] = 0;
  return b;
}

export function parseOpusHead(p: Uint8Array): OpusHead | null {
  const b = Buffer.from(p.buffer, p.byteOffset, p.byteLength);
  if (b.length < 19 || b.toString('ascii', 0, 8) !== 'OpusHead' || (b[8]! & 0xf0) !== 0) return null;
  return { channels: b[9]!, preSkip: b.readUInt16LE(10), inputSampleRate: b.readUInt32LE(12), outputGain: b.readInt16LE(16) };
}

/** OpusTags, RFC 7845 section 5.2. Holds only the vendor and encoder: never anything about the call. */
export function opusTagsPacket(vendor: string, comments: readonly string[] = []): Buffer {
  const parts: Buffer[] = [Buffer.from('OpusTags', 'ascii')];
  const v = Buffer.from(vendor, 'utf8');
  const len = (n: number): Buffer => {
    const b = Buffer.alloc(4);
    b.writeUInt32LE(n);
    return b;
  };
  parts.push(len(v.length), v, len(comments.length));
  for (const c of comments) {
    const cb = Buffer.from(c, 'utf8');
    parts.push(len(cb.length), cb);
  }
  return Buffer.concat(parts);
}
