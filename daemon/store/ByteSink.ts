/**
 * The last stages of the audio path: where the muxer's bytes go. Stages wrap one another (hash, then
 * encrypt, then the file) and each keeps this contract:
 * - `write` appends; nothing written is ever rewritten in place;
 * - `flush` makes everything written so far durable (the file stage calls fdatasync);
 * - `close` flushes and releases; no call is allowed after it.
 */
export interface ByteSink {
  write(bytes: Buffer): void;
  flush(): void;
  close(): void;
}
