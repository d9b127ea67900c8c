/**
 * The sealed audio stream (docs/file-format.md): a 32-byte header, then segments, each
 * `flags (1) | length (4, big-endian, ciphertext + tag) | ciphertext | tag (16)`, sealed with AES-256-GCM
 * under the recording's data key, nonce = prefix (7, from the header) | counter (4) | flags (1), and the
 * header as associated data. The counter orders the segments, the flags mark the final one: a segment
 * that is cut, moved, swapped, dropped or altered fails to open.
 */
export const MAGIC = 'CRECAUD1';
export const VERSION = 1;
export const HEADER_BYTES = 32;
export const SEGMENT_HEAD_BYTES = 5;
export const TAG_BYTES = 16;
export const FLAG_FINAL = 0x01;
/** Written by crash repair after a torn segment: its counter skips the torn one's, never reusing a nonce. */
export const FLAG_REPAIR = 0x02;
export const MAX_SEGMENT_BYTES = 64 * 1024 * 1024;

export function header(prefix: Buffer): Buffer {
  const h = Buffer.alloc(HEADER_BYTES);
  h.write(MAGIC, 0, 'ascii');
  h[8] = VERSION;
  prefix.copy(h, 12, 0, 7);
  return h;
}

export function nonce(head: Buffer, counter: number, flags: number): Buffer {
  const n = Buffer.alloc(12);
  head.copy(n, 0, 12, 19);
  n.writeUInt32BE(counter, 7);
  n[11] = flags;
  return n;
}
