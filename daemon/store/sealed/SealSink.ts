import { createCipheriv, randomBytes } from 'node:crypto';
import type { ByteSink } from '../ByteSink.js';
import { FLAG_FINAL, header, nonce, SEGMENT_HEAD_BYTES } from './format.js';

/** Seals one segment: the bytes to append for it. */
export function sealSegment(key: Buffer, head: Buffer, counter: number, flags: number, plain: Buffer): Buffer {
  const c = createCipheriv('aes-256-gcm', key, nonce(head, counter, flags));
  c.setAAD(head);
  const body = Buffer.concat([c.update(plain), c.final(), c.getAuthTag()]);
  const out = Buffer.alloc(SEGMENT_HEAD_BYTES + body.length);
  out[0] = flags;
  out.writeUInt32BE(body.length, 1);
  body.copy(out, SEGMENT_HEAD_BYTES);
  return out;
}

/**
 * The encryption stage: buffers plain bytes, seals them as one segment at each flush (never re-sealed),
 * and finishes the stream with an empty final segment on close.
 */
export class SealSink implements ByteSink {
  private readonly head: Buffer;
  private buffered: Buffer[] = [];
  private counter = 0;
  private closed = false;

  constructor(private readonly next: ByteSink, private readonly key: Buffer) {
    this.head = header(randomBytes(7));
    this.next.write(this.head);
  }

  write(bytes: Buffer): void {
    if (this.closed) throw new Error('write after close');
    this.buffered.push(Buffer.from(bytes));
  }

  flush(): void {
    this.sealBuffered();
    this.next.flush();
  }

  close(): void {
    if (this.closed) return;
    this.sealBuffered();
    this.next.write(sealSegment(this.key, this.head, this.counter++, FLAG_FINAL, Buffer.alloc(0)));
    this.closed = true;
    this.next.close();
  }

  private sealBuffered(): void {
    if (this.buffered.length === 0) return;
    const plain = Buffer.concat(this.buffered);
    this.buffered = [];
    this.next.write(sealSegment(this.key, this.head, this.counter++, 0, plain));
  }
}
