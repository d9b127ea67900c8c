import { closeSync, existsSync, fsyncSync, mkdirSync, openSync, readFileSync, renameSync, writeSync } from 'node:fs';
import { dirname } from 'node:path';
import { createHash } from 'node:crypto';
import type { Logger } from 'pino';
import { repairOggOpus } from './ogg/repairOggOpus.js';
import { PRE_SKIP_48K } from '../encode/OpusFrameEncoder.js';
import { audioPath } from './recordingPaths.js';
import type { RecordingStore } from './RecordingStore.js';

/**
 * After a crash or power loss: every recording still marked `recording` is cut to its last whole page,
 * closed with end-of-stream, and given the end its last granule shows (status `end_unknown`).
 */
export async function recoverInterrupted(dataDir: string, store: RecordingStore, log: Logger): Promise<number> {
  const open = await store.withStatus('recording');
  for (const meta of open) {
    const file = audioPath(dataDir, meta.id, meta.startedAt);
    const bytes = existsSync(file) ? readFileSync(file) : Buffer.alloc(0);
    const fixed = repairOggOpus(bytes, { channels: meta.codec.channels, preSkip: PRE_SKIP_48K, inputSampleRate: meta.codec.sampleRate, outputGain: 0 });
    mkdirSync(dirname(file), { recursive: true, mode: 0o750 });
    const tmp = `${file}.repair`;
    writeDurably(tmp, fixed.bytes);
    renameSync(tmp, file);
    syncDir(dirname(file));
    const durationMs = Math.max(0, Math.round(Number(fixed.finalGranule - BigInt(PRE_SKIP_48K)) / 48));
    meta.status = 'end_unknown';
    meta.durationMs = durationMs;
    meta.endedAt = new Date(Date.parse(meta.startedAt) + durationMs).toISOString();
    meta.audioBytes = fixed.bytes.length;
    meta.audioSha256 = createHash('sha256').update(fixed.bytes).digest('hex');
    if (!meta.flags.includes('repaired')) meta.flags.push('repaired');
    await store.put(meta);
    log.warn({ recordingId: meta.id, cutBytes: fixed.cutBytes, durationMs }, 'recording repaired after an unclean stop');
  }
  return open.length;
}

/** Written and synced before the rename, so a second crash finds either the old file or the new one. */
function writeDurably(path: string, bytes: Buffer): void {
  const fd = openSync(path, 'w', 0o640);
  try {
    writeSync(fd, bytes);
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
}

function syncDir(dir: string): void {
  const fd = openSync(dir, 'r');
  try {
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
}
