import { createHmac, randomBytes } from 'node:crypto';
import { open, seal } from './aead.js';
import type { Epoch, EpochKeyStore } from './EpochKeyStore.js';

/** The recording-level keys: one random data key per recording, sealed under its month's epoch key. */
export class KeyRing {
  constructor(readonly epochs: EpochKeyStore) {}

  newDataKey(id: string, epoch: Epoch): { key: Buffer; wrapped: string } {
    const key = randomBytes(32);
    return { key, wrapped: seal(this.epochs.keysFor(epoch).wrapKey, key, aad(id, epoch)).toString('base64') };
  }

  openDataKey(id: string, epoch: Epoch, wrapped: string): Buffer {
    return open(this.epochs.keys(epoch).wrapKey, Buffer.from(wrapped, 'base64'), aad(id, epoch), `data key of ${id}`);
  }

  /**
   * A keyed hash for an index key: lookup by number or adviser still works (one probe per live epoch),
   * the database shows no number or name, and once the epoch dies its hashes cannot be tested either.
   */
  indexHash(epoch: Epoch, kind: 'caller' | 'agent' | 'service', value: string): string {
    return createHmac('sha256', this.epochs.keys(epoch).indexKey).update(`${kind}\0${value}`).digest('base64url').slice(0, 32);
  }
}

const aad = (id: string, epoch: Epoch): string => `callrec data key ${id} in ${epoch}`;
