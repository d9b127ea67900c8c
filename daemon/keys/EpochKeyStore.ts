import { randomBytes } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { replaceFileDurably } from '../store/durableWrite.js';
import { open, seal } from './aead.js';
import type { MasterKey } from './MasterKey.js';
import { protectKey } from './protectKey.js';

/** One calendar month of recordings (UTC start), e.g. `2026-12`. */
export type Epoch = string;

export interface EpochKeys {
  /** Wraps the month's data keys. */
  wrapKey: Buffer;
  /** Keys the month's index hashes (caller, adviser, service number). */
  indexKey: Buffer;
}

interface StoredEpoch {
  masterKeyId: string;
  sealed: string;
}

interface StoreFile {
  version: 1;
  epochs: Record<Epoch, StoredEpoch>;
}

export class KeyStoreError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'KeyStoreError';
  }
}

export const epochOf = (startedAtMs: number): Epoch => new Date(startedAtMs).toISOString().slice(0, 7);

/**
 * The epoch keys, each sealed under a master key, in one small file replaced atomically on every change.
 * Destroying an epoch removes its entry: from then on no copy of its data keys or index hashes, wherever
 * old blocks keep them, can be opened or tested.
 */
export class EpochKeyStore {
  private file: StoreFile;
  private readonly cache = new Map<Epoch, EpochKeys>();

  constructor(private readonly path: string, private readonly masters: { current: MasterKey; all: MasterKey[] }) {
    this.file = existsSync(path) ? (JSON.parse(readFileSync(path, 'utf8')) as StoreFile) : { version: 1, epochs: {} };
    // Fail at start, naming the key, rather than at the first playback.
    for (const epoch of Object.keys(this.file.epochs)) this.keys(epoch);
  }

  epochs(): Epoch[] {
    return Object.keys(this.file.epochs).sort();
  }

  has(epoch: Epoch): boolean {
    return Object.hasOwn(this.file.epochs, epoch);
  }

  /** The epoch's keys, made (and stored) on first use. */
  keysFor(epoch: Epoch): EpochKeys {
    if (!this.has(epoch)) {
      const material = randomBytes(64);
      this.file.epochs[epoch] = this.sealEpoch(epoch, material);
      this.save();
    }
    return this.keys(epoch);
  }

  keys(epoch: Epoch): EpochKeys {
    const cached = this.cache.get(epoch);
    if (cached) return cached;
    const stored = this.file.epochs[epoch];
    if (!stored) throw new KeyStoreError(`epoch ${epoch} has no key (destroyed)`);
    const master = this.masters.all.find((m) => m.id === stored.masterKeyId);
    if (!master) throw new KeyStoreError(`epoch ${epoch} is sealed under master key ${stored.masterKeyId}, which is not loaded: install that credential (see docs/security.md, rotation)`);
    const material = protectKey(Buffer.allocUnsafeSlow(64));
    open(master.key, Buffer.from(stored.sealed, 'base64'), aad(epoch, master.id), `epoch key ${epoch}`).copy(material);
    const keys = { wrapKey: material.subarray(0, 32), indexKey: material.subarray(32, 64) };
    this.cache.set(epoch, keys);
    return keys;
  }

  /** Erases the epoch's key: every data key and index hash of that month becomes unopenable. */
  destroy(epoch: Epoch): void {
    if (!this.has(epoch)) return;
    const keys = this.cache.get(epoch);
    keys?.wrapKey.fill(0);
    keys?.indexKey.fill(0);
    this.cache.delete(epoch);
    delete this.file.epochs[epoch];
    this.save();
  }

  /** Epochs still sealed under another master key than the current one. */
  staleEpochs(): Epoch[] {
    return this.epochs().filter((e) => this.file.epochs[e]!.masterKeyId !== this.masters.current.id);
  }

  /**
   * Re-seals every epoch under the current master key, one atomic replace of the store: an interrupted
   * rotation leaves the old store whole, and running it again finishes the job.
   */
  rotate(): { rotated: number; masterKeyId: string } {
    const stale = this.staleEpochs();
    for (const epoch of stale) {
      const k = this.keys(epoch);
      this.file.epochs[epoch] = this.sealEpoch(epoch, Buffer.concat([k.wrapKey, k.indexKey]));
    }
    if (stale.length > 0) this.save();
    return { rotated: stale.length, masterKeyId: this.masters.current.id };
  }

  private sealEpoch(epoch: Epoch, material: Buffer): StoredEpoch {
    const m = this.masters.current;
    return { masterKeyId: m.id, sealed: seal(m.key, material, aad(epoch, m.id)).toString('base64') };
  }

  private save(): void {
    replaceFileDurably(this.path, `${JSON.stringify(this.file, null, 2)}\n`, 0o600);
  }
}

const aad = (epoch: Epoch, masterKeyId: string): string => `callrec epoch ${epoch} under ${masterKeyId}`;
