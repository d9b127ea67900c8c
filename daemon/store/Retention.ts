import type { Logger } from 'pino';
import { epochOf, type EpochKeyStore } from '../keys/EpochKeyStore.js';
import type { Destroyer } from './Destroyer.js';
import { isTombstone } from './RecordingMeta.js';
import type { RecordingStore } from './RecordingStore.js';

/**
 * Retention: recordings older than `months` are destroyed (through the one Destroyer), and an epoch whose
 * month is over and which holds no live recording loses its key, which erases every leftover copy of that
 * month's data keys and index hashes. The clock is injected so tests can run a year in a second.
 */
export class Retention {
  constructor(
    private readonly store: RecordingStore,
    private readonly destroyer: Destroyer,
    private readonly epochs: EpochKeyStore,
    private readonly months: () => number,
    private readonly log: Logger,
    private readonly onDisk: () => Set<string>,
    private readonly now: () => number = Date.now,
  ) {}

  /** The start time before which recordings are due for destruction. */
  cutoff(): string {
    const d = new Date(this.now());
    d.setUTCMonth(d.getUTCMonth() - this.months());
    return d.toISOString();
  }

  async sweep(): Promise<{ destroyed: number; epochsDestroyed: string[] }> {
    const cutoff = this.cutoff();
    const due: string[] = [];
    // One pass over the records: what is due, and which months keep a live recording afterwards.
    const live = new Set<string>();
    for await (const rec of this.store.all()) {
      if (isTombstone(rec)) continue;
      if (rec.status !== 'recording' && rec.startedAt < cutoff) due.push(rec.id);
      else live.add(epochOf(Date.parse(rec.startedAt)));
    }
    for (const id of due) await this.destroyer.destroy(id, 'retention period ended', 'retention');
    const current = epochOf(this.now());
    const epochsDestroyed: string[] = [];
    // The index may be incomplete (lost, or mid-rebuild): a sidecar on disk keeps its month's key alive.
    const onDisk = this.onDisk();
    for (const epoch of this.epochs.epochs()) {
      if (epoch >= current || live.has(epoch) || onDisk.has(epoch)) continue;
      this.epochs.destroy(epoch);
      epochsDestroyed.push(epoch);
    }
    if (due.length > 0 || epochsDestroyed.length > 0) this.log.info({ destroyed: due.length, epochsDestroyed, cutoff }, 'retention sweep');
    return { destroyed: due.length, epochsDestroyed };
  }
}
