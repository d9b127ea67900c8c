import { lockMemory } from '../../native/libc.js';

/** Master and epoch keys stay out of swap where the OS allows (the process is already not dumpable). */
export function protectKey(key: Buffer): Buffer {
  lockMemory(key);
  return key;
}
