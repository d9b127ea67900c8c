import { join } from 'node:path';
import { RECORDING_ID } from './recordingId.js';

/** A recording's folder: <dataDir>/recordings/YYYY/MM/DD, by UTC start date. */
function dayDir(dataDir: string, id: string, startedAt: string): string {
  if (!RECORDING_ID.test(id)) throw new Error('not a recording id');
  const d = new Date(startedAt);
  const pad = (n: number): string => String(n).padStart(2, '0');
  return join(dataDir, 'recordings', String(d.getUTCFullYear()), pad(d.getUTCMonth() + 1), pad(d.getUTCDate()));
}

/** The sealed audio: Ogg Opus inside the sealed stream format. */
export const audioPath = (dataDir: string, id: string, startedAt: string): string => join(dayDir(dataDir, id, startedAt), `${id}.opus.sealed`);

/** The sealed metadata sidecar, from which the index can be rebuilt. */
export const sidecarPath = (dataDir: string, id: string, startedAt: string): string => join(dayDir(dataDir, id, startedAt), `${id}.meta`);

export const epochStorePath = (dataDir: string): string => join(dataDir, 'keys', 'epochs.json');

export const indexPath = (dataDir: string): string => join(dataDir, 'index');

export const destructionLogPath = (dataDir: string): string => join(dataDir, 'destroyed.log');
