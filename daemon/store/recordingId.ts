import { randomBytes } from 'node:crypto';

const ALPHABET = '0123456789ABCDEFGHJKMNPQRSTVWXYZ'; // Crockford base32

/**
 * A recording id: 10 characters of millisecond time and 16 of randomness (ULID layout), so ids sort by
 * creation and say nothing about the call. File names are made from it, never from caller data.
 */
export function newRecordingId(nowMs = Date.now()): string {
  let time = '';
  let t = nowMs;
  for (let i = 0; i < 10; i++) {
    time = ALPHABET[t % 32]! + time;
    t = Math.floor(t / 32);
  }
  const rnd = randomBytes(16);
  let tail = '';
  for (let i = 0; i < 16; i++) tail += ALPHABET[rnd[i]! % 32]!;
  return time + tail;
}

export const RECORDING_ID = /^[0-9A-HJKMNP-TV-Z]{26}$/;
