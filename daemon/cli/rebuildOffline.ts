import { existsSync, rmSync } from 'node:fs';
import { Level } from 'level';
import pino from 'pino';
import { loadConfig } from '../config/loadConfig.js';
import { EpochKeyStore } from '../keys/EpochKeyStore.js';
import { KeyRing } from '../keys/KeyRing.js';
import { loadMasterKeys } from '../keys/MasterKey.js';
import { Destroyer } from '../store/Destroyer.js';
import { destructionLogPath, epochStorePath, indexPath, sidecarPath } from '../store/recordingPaths.js';
import { RecordingStore } from '../store/RecordingStore.js';
import { findSidecars, rebuildFromSidecars, setAsideIndex } from '../store/rebuildIndex.js';
import { progressMeter } from './progress.js';

/**
 * `callrec db rebuild --offline --config FILE`: with callrecd stopped, a fresh index from the sealed
 * sidecars, then the destruction log replayed so nothing destroyed comes back. The master key comes the
 * way the daemon gets it (the key file, or the credential: run it under `systemd-run -p
 * LoadCredentialEncrypted=...`, see docs/operations.md).
 */
export async function rebuildOffline(configFile: string): Promise<{ restored: number; failed: Array<{ file: string; problem: string }>; oldIndex: string | null; destructionsReplayed: number }> {
  const cfg = loadConfig(configFile);
  const masters = loadMasterKeys({ credential: cfg.keys.masterCredential, ...(cfg.keys.masterFile ? { file: cfg.keys.masterFile } : {}), create: false });
  const keys = new KeyRing(new EpochKeyStore(epochStorePath(cfg.dataDir), masters));
  await refuseIfLocked(indexPath(cfg.dataDir));
  const files = findSidecars(cfg.dataDir);
  const oldIndex = setAsideIndex(indexPath(cfg.dataDir));
  const store = await RecordingStore.open(indexPath(cfg.dataDir), keys, (id, startedAt) => sidecarPath(cfg.dataDir, id, startedAt));
  try {
    const meter = progressMeter('rebuilding');
    const r = await rebuildFromSidecars(store, files, (d, t) => meter.update(d, t));
    meter.end();
    const destructionsReplayed = await new Destroyer(cfg.dataDir, store, destructionLogPath(cfg.dataDir), pino({ level: 'silent' })).replay();
    // The old index still holds what was destroyed since: once the new one is whole, it goes.
    if (oldIndex && r.failed.length === 0) rmSync(oldIndex, { recursive: true, force: true });
    return { ...r, oldIndex: r.failed.length === 0 ? null : oldIndex, destructionsReplayed };
  } finally {
    await store.close();
  }
}

/** LevelDB's lock says whether callrecd has the index open: then a rebuild must not touch it. */
async function refuseIfLocked(dir: string): Promise<void> {
  if (!existsSync(dir)) return;
  const db = new Level(dir, { createIfMissing: false });
  try {
    await db.open();
    await db.close();
  } catch (err) {
    if ((err as { cause?: { code?: string } }).cause?.code === 'LEVEL_LOCKED') throw new Error(`the index ${dir} is locked: stop callrecd before rebuilding`);
    // Damaged beyond opening: that is what the rebuild is for.
  }
}
