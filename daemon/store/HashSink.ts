import { createHash, type Hash } from 'node:crypto';
import type { ByteSink } from './ByteSink.js';

/** A pass-through stage that counts and hashes what flows into the next one. */
export class HashSink implements ByteSink {
  private readonly hash: Hash = createHash('sha256');
  bytes = 0;
  private digestHex: string | null = null;

  constructor(private readonly next: ByteSink) {}

  write(bytes: Buffer): void {
    this.hash.update(bytes);
    this.bytes += bytes.length;
    this.next.write(bytes);
  }

  flush(): void {
    this.next.flush();
  }

  close(): void {
    this.next.close();
    this.digestHex ??= this.hash.digest('hex');
  }

  /** SHA-256 of everything written; available after close. */
  get sha256(): string {
    if (this.digestHex === null) throw new Error('hash read before close');
    return this.digestHex;
  }
}
