import type { EventEmitter } from 'node:events';

/**
 * One telephony card (or its stand-in): a source of interleaved signed 16-bit little-endian frames.
 *
 * Contract, as every backend keeps it:
 * - `start()` resolves once the device is open and capturing; it rejects with a CaptureError when the
 *   device is missing or cannot be opened with the requested channels and rate.
 * - `'data'` carries raw bytes in capture order. A chunk may end inside a sample frame (or even inside a
 *   sample); the consumer carries the remainder over to the next chunk. Chunks are never reordered.
 * - Bytes that the device lost (overflow, stall) are simply missing: the backend does not pad them. The
 *   consumer finds gaps by comparing the samples received with the monotonic clock.
 * - `'error'` reports a fault (device unplugged, read failure). The device is then stopped; the owner may
 *   `start()` it again.
 * - `stop()` is idempotent and resolves when no more `'data'` will be emitted.
 */
export interface CaptureDevice extends EventEmitter {
  readonly id: string;
  readonly channels: number;
  readonly sampleRate: number;
  start(): Promise<void>;
  stop(): Promise<void>;
  on(event: 'data', listener: (chunk: Buffer) => void): this;
  on(event: 'error', listener: (err: Error) => void): this;
}

export type CaptureErrorCode = 'DEVICE_NOT_FOUND' | 'DEVICE_OPEN_FAILED' | 'DEVICE_READ_FAILED' | 'BAD_FORMAT';

export class CaptureError extends Error {
  constructor(readonly code: CaptureErrorCode, message: string, readonly deviceId?: string) {
    super(message);
    this.name = 'CaptureError';
  }
}
