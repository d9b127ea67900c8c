import { closeSync, fdatasyncSync, mkdirSync, openSync, writeSync } from 'node:fs';
import { dirname } from 'node:path';
import type { ByteSink } from './ByteSink.js';

/** The file stage: appends to a new file (never an existing one), fdatasync on flush. */
export class FileSink implements ByteSink {
  private fd: number | null;
  bytesWritten = 0;

  constructor(readonly path: string) {
    mkdirSync(dirname(path), { recursive: true, mode: 0o750 });
    this.fd = openSync(path, 'wx', 0o640);
  }

  write(bytes: Buffer): void {
    if (this.fd === null) throw new Error(`write after close: ${this.path}`);
    let off = 0;
    while (off < bytes.length) off += writeSync(this.fd, bytes, off, bytes.length - off);
    this.bytesWritten += bytes.length;
  }

  flush(): void {
    if (this.fd !== null) fdatasyncSync(this.fd);
  }

  close(): void {
    if (this.fd === null) return;
    fdatasyncSync(this.fd);
    closeSync(this.fd);
    this.fd = null;
  }
}
