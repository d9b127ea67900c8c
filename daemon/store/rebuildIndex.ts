import { existsSync, readdirSync, readFileSync, renameSync } from 'node:fs';
import { join } from 'node:path';
import type { StoredRecording } from './StoredRecord.js';
import type { RecordingStore } from './RecordingStore.js';

/** Every sidecar under <dataDir>/recordings (YYYY/MM/DD/<id>.meta). */
export function findSidecars(dataDir: string): string[] {
  const root = join(dataDir, 'recordings');
  if (!existsSync(root)) return [];
  const out: string[] = [];
  const walk = (dir: string): void => {
    for (const e of readdirSync(dir, { withFileTypes: true })) {
      if (e.isDirectory()) walk(join(dir, e.name));
      else if (e.name.endsWith('.meta')) out.push(join(dir, e.name));
    }
  };
  walk(root);
  return out.sort();
}

/** The months (epochs, `YYYY-MM`) that still hold a sidecar on disk, whatever the index says. */
export function epochsOnDisk(dataDir: string): Set<string> {
  const months = new Set<string>();
  const root = join(dataDir, 'recordings');
  if (!existsSync(root)) return months;
  for (const y of readdirSync(root)) {
    for (const m of existsSync(join(root, y)) ? readdirSync(join(root, y)) : []) {
      const monthDir = join(root, y, m);
      const holds = (dir: string): boolean => readdirSync(dir, { withFileTypes: true }).some((e) => (e.isDirectory() ? holds(join(dir, e.name)) : e.name.endsWith('.meta')));
      if (/^\d{4}$/.test(y) && /^\d{2}$/.test(m) && holds(monthDir)) months.add(`${y}-${m}`);
    }
  }
  return months;
}

/** Moves a damaged index aside (kept, never deleted: it may be evidence). */
export function setAsideIndex(indexDir: string, nowMs = Date.now()): string | null {
  if (!existsSync(indexDir)) return null;
  const aside = `${indexDir}.old-${new Date(nowMs).toISOString().replace(/[:.]/g, '')}`;
  renameSync(indexDir, aside);
  return aside;
}

/** Restores each sidecar's record into a fresh index; `progress` is told after each. */
export async function rebuildFromSidecars(store: RecordingStore, files: string[], progress: (done: number, total: number) => void): Promise<{ restored: number; failed: Array<{ file: string; problem: string }> }> {
  let restored = 0;
  const failed: Array<{ file: string; problem: string }> = [];
  for (const [i, file] of files.entries()) {
    try {
      await store.restore(JSON.parse(readFileSync(file, 'utf8')) as StoredRecording);
      restored++;
    } catch (err) {
      failed.push({ file, problem: (err as Error).message });
    }
    progress(i + 1, files.length);
  }
  return { restored, failed };
}
