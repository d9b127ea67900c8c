import { join } from 'node:path';
import { RECORDING_ID } from './recordingId.js';

/** Where a recording's audio lives: <dataDir>/recordings/YYYY/MM/DD/<id>.opus, by UTC start date. */
export function audioPath(dataDir: string, id: string, startedAt: string): string {
  if (!RECORDING_ID.test(id)) throw new Error('not a recording id');
  const d = new Date(startedAt);
  const pad = (n: number): string => String(n).padStart(2, '0');
  return join(dataDir, 'recordings', String(d.getUTCFullYear()), pad(d.getUTCMonth() + 1), pad(d.getUTCDate()), `${id}.opus`);
}

export const indexPath = (dataDir: string): string => join(dataDir, 'index');
