import { appendFileSync, closeSync, existsSync, fsyncSync, openSync, readFileSync, rmSync, statSync } from 'node:fs';
import type { Logger } from 'pino';
import { isTombstone, type RecordingTombstone } from './RecordingMeta.js';
import { audioPath, sidecarPath } from './recordingPaths.js';
import type { RecordingStore } from './RecordingStore.js';

export type DestroyReason = string;

interface LogEntry {
  id: string;
  startedAt: string;
  reason: string;
  role: string;
  at: string;
}

/**
 * The one function for every path that deletes a recording (a manual destroy, an objection, retention,
 * an epoch's end). Each step can be interrupted; the destruction log, written first, makes a restart
 * (and a restore from backup) finish the job:
 *   1. append the intent to the destruction log (fsync);
 *   2. replace the record by a tombstone with nothing personal and drop its index entries (one batch):
 *      the only stored copies of its wrapped data key go with it;
 *   3. unlink the audio and the sidecar;
 *   4. compact LevelDB, so the old values leave the table files.
 * Copies that freed blocks still hold stay sealed under the month's epoch key until the epoch dies.
 */
export class Destroyer {
  constructor(private readonly dataDir: string, private readonly store: RecordingStore, private readonly logPath: string, private readonly log: Logger, private readonly now: () => number = Date.now) {}

  async destroy(id: string, reason: string, role: string): Promise<RecordingTombstone> {
    const rec = await this.store.stored(id);
    if (!rec) throw new Error(`no recording ${id}`);
    if (isTombstone(rec)) return rec;
    const entry: LogEntry = { id, startedAt: rec.startedAt, reason, role, at: new Date(this.now()).toISOString() };
    this.append(entry);
    return this.carryOut(entry);
  }

  /** At start: finishes every logged destruction, including ones a restored backup brought back. */
  async replay(): Promise<number> {
    if (!existsSync(this.logPath)) return 0;
    let redone = 0;
    for (const line of readFileSync(this.logPath, 'utf8').split('\n')) {
      if (!line.trim()) continue;
      let entry: LogEntry;
      try {
        entry = JSON.parse(line) as LogEntry;
      } catch {
        continue; // a torn last line: its destroy had not started
      }
      const rec = await this.store.stored(entry.id);
      const leftovers = [audioPath(this.dataDir, entry.id, entry.startedAt), sidecarPath(this.dataDir, entry.id, entry.startedAt)].some((f) => existsSync(f));
      // Not yet a tombstone (interrupted, restored from a backup, or an index rebuilt from sidecars).
      if (!rec || !isTombstone(rec) || leftovers) {
        await this.carryOut(entry, false);
        redone++;
      }
    }
    if (redone > 0) await this.store.compact();
    if (redone > 0) this.log.warn({ redone }, 'destructions finished from the destruction log');
    return redone;
  }

  private async carryOut(entry: LogEntry, compact = true): Promise<RecordingTombstone> {
    const tomb: RecordingTombstone = { id: entry.id, status: 'destroyed', destroyedAt: entry.at, reason: entry.reason, role: entry.role };
    await this.store.replaceWithTombstone(tomb);
    rmSync(audioPath(this.dataDir, entry.id, entry.startedAt), { force: true });
    rmSync(sidecarPath(this.dataDir, entry.id, entry.startedAt), { force: true });
    if (compact) await this.store.compact();
    this.log.info({ recordingId: entry.id, role: entry.role }, 'recording destroyed');
    return tomb;
  }

  private append(entry: LogEntry): void {
    // A power cut can leave a torn last line: start on a line of our own, or the entry would be lost with it.
    const torn = existsSync(this.logPath) && statSync(this.logPath).size > 0 && !readFileSync(this.logPath).subarray(-1).equals(Buffer.from('\n'));
    appendFileSync(this.logPath, `${torn ? '\n' : ''}${JSON.stringify(entry)}\n`, { mode: 0o640 });
    const fd = openSync(this.logPath, 'r');
    try {
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
  }
}
