import { existsSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { replaceFileDurably } from './durableWrite.js';
import { createHash } from 'node:crypto';
import type { Logger } from 'pino';
import { RepairRefusedError, repairSealed } from './sealed/repairSealed.js';
import { PRE_SKIP_48K } from '../encode/OpusFrameEncoder.js';
import { audioPath } from './recordingPaths.js';
import type { RecordingStore } from './RecordingStore.js';
import type { RecordingMeta, RecordingStatus } from './RecordingMeta.js';

/**
 * After a crash or power loss: every recording still marked `recording` is repaired (see
 * `repairRecording`).
 */
export async function recoverInterrupted(dataDir: string, store: RecordingStore, log: Logger): Promise<number> {
  const open = await store.withStatus('recording');
  for (const meta of open) await repairRecording(dataDir, store, meta, 'interrupted', log);
  return open.length;
}

/**
 * Closes one recording whose writer stopped without finishing it (a crash, or a write that failed): the
 * file is cut to its last intact sealed segment (whole Ogg pages), closed with an end-of-stream page and
 * the final segment, and the record gets `status`, flag `repaired`, and the end its last granule shows.
 * A file that does not open at all is left exactly as found (flag `repair_refused`) for a person to see.
 */
export async function repairRecording(dataDir: string, store: RecordingStore, meta: RecordingMeta, status: RecordingStatus, log: Logger): Promise<void> {
  const file = audioPath(dataDir, meta.id, meta.startedAt);
  const bytes = existsSync(file) ? readFileSync(file) : Buffer.alloc(0);
  const key = await store.dataKey(meta.id);
  let fixed;
  try {
    fixed = repairSealed(bytes, key, { channels: meta.codec.channels, preSkip: PRE_SKIP_48K, inputSampleRate: meta.codec.sampleRate, outputGain: 0 });
  } catch (err) {
    if (!(err instanceof RepairRefusedError)) throw err;
    meta.status = status;
    if (!meta.flags.includes('repair_refused')) meta.flags.push('repair_refused');
    await store.put(meta);
    log.error({ recordingId: meta.id, err: err.message }, 'recording not repaired');
    return;
  } finally {
    key.fill(0);
  }
  replaceFileDurably(file, fixed.stored);
  const durationMs = Math.max(0, Math.round(Number(fixed.finalGranule - BigInt(PRE_SKIP_48K)) / 48));
  meta.status = status;
  meta.durationMs = durationMs;
  meta.endedAt = new Date(Date.parse(meta.startedAt) + durationMs).toISOString();
  meta.audioBytes = fixed.plain.length;
  meta.audioSha256 = createHash('sha256').update(fixed.plain).digest('hex');
  meta.storedBytes = fixed.stored.length;
  meta.storedSha256 = createHash('sha256').update(fixed.stored).digest('hex');
  if (!meta.flags.includes('repaired')) meta.flags.push('repaired');
  await store.put(meta);
  log.warn({ recordingId: meta.id, cutBytes: fixed.cutBytes, durationMs }, 'recording repaired after an unclean stop');
}

/** At start: temporary files a crash left mid-replace (`*.tmp`) under the data directory are removed. */
export function sweepTemporaryFiles(dataDir: string): number {
  let n = 0;
  const walk = (dir: string): void => {
    if (!existsSync(dir)) return;
    for (const e of readdirSync(dir, { withFileTypes: true })) {
      const p = join(dir, e.name);
      if (e.isDirectory()) walk(p);
      else if (e.name.endsWith('.tmp')) {
        rmSync(p, { force: true });
        n++;
      }
    }
  };
  walk(join(dataDir, 'recordings'));
  walk(join(dataDir, 'keys'));
  return n;
}
