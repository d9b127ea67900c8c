import { createHash } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import type { Config } from '../config/Config.js';
import { normalizeNumber } from '../calls/callerNumber.js';
import { wavBytes } from '../capture/wav.js';
import { decodeOggOpus } from '../store/ogg/decodeOggOpus.js';
import { isTombstone, type RecordingMeta, type RecordingRecord } from '../store/RecordingMeta.js';
import { openSealed, SealedStreamError } from '../store/sealed/openSealed.js';
import { audioPath } from '../store/recordingPaths.js';
import { RECORDING_ID } from '../store/recordingId.js';
import type { RecordingStore } from '../store/RecordingStore.js';
import { ServiceError } from './errors.js';
import type { Destroyer } from '../store/Destroyer.js';
import { parseDate, parseRfc3339, toUtcString } from '../time/rfc3339.js';

export interface ListParams {
  from?: string;
  to?: string;
  caller?: string;
  agent?: string;
  includeDestroyed?: boolean;
}

/** Search, show and export recordings: the one place the API and the CLI both go through. */
export class CallService {
  constructor(private readonly cfg: Config, private readonly store: RecordingStore, private readonly destroyer: Destroyer) {}

  /** Destroys a recording for good (`callrec calls destroy`; objections and retention use the same Destroyer). */
  async destroy(id: string, reason: string, role: string): Promise<RecordingRecord> {
    const rec = await this.show(id);
    if (!isTombstone(rec) && rec.status === 'recording') throw new ServiceError('conflict', `recording ${id} is still being recorded: destroy it once it ends`);
    return this.destroyer.destroy(id, reason, role);
  }

  /** Ids of the finished recordings, for `callrec verify --all` (which checks them one by one, with progress). */
  async verifiableIds(): Promise<string[]> {
    const ids: string[] = [];
    for await (const rec of this.store.all()) if (!isTombstone(rec) && rec.status !== 'recording') ids.push(rec.id);
    return ids;
  }

  /** Rechecks one recording: stored hash, every segment's tag, the plain audio's hash. */
  async verify(id: string): Promise<{ id: string; ok: boolean; problem?: string }> {
    const rec = await this.show(id);
    if (isTombstone(rec)) return { id, ok: true };
    try {
      await this.plainAudio(rec);
      return { id, ok: true };
    } catch (err) {
      if (err instanceof ServiceError && err.code === 'integrity') return { id, ok: false, problem: err.message };
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return { id, ok: false, problem: `recording ${id}: its audio file is missing` };
      throw err;
    }
  }

  async list(p: ListParams): Promise<RecordingRecord[]> {
    const caller = p.caller === undefined ? undefined : (normalizeNumber(p.caller, this.cfg.phone.defaultRegion) ?? `raw:${p.caller}`);
    return this.store.list({
      ...(p.from !== undefined ? { from: toUtcBound(p.from, 'from') } : {}),
      ...(p.to !== undefined ? { to: toUtcBound(p.to, 'to') } : {}),
      ...(caller !== undefined ? { caller } : {}),
      ...(p.agent !== undefined ? { agentId: p.agent } : {}),
      includeDestroyed: p.includeDestroyed === true,
    });
  }

  async show(id: string): Promise<RecordingRecord> {
    if (!RECORDING_ID.test(id)) throw new ServiceError('not_found', `no recording ${JSON.stringify(id)}`);
    const rec = await this.store.get(id);
    if (!rec) throw new ServiceError('not_found', `no recording ${id}`);
    return rec;
  }

  /** The recording's audio as Ogg Opus, or decoded to WAV at the line's rate; checked against its hash. */
  async export(id: string, format: 'opus' | 'wav'): Promise<Buffer> {
    const rec = await this.show(id);
    if (isTombstone(rec)) throw new ServiceError('not_found', `recording ${id} was destroyed`);
    if (rec.status === 'recording') throw new ServiceError('conflict', `recording ${id} is still being recorded`);
    const bytes = await this.plainAudio(rec);
    if (format === 'opus') return bytes;
    return wavBytes(decodeOggOpus(bytes, rec.codec.sampleRate));
  }

  /** The plain Ogg Opus of a finished recording, after every check: stored hash, each segment's tag, plain hash. */
  private async plainAudio(rec: RecordingMeta): Promise<Buffer> {
    const stored = await readFile(audioPath(this.cfg.dataDir, rec.id, rec.startedAt));
    let plain: Buffer;
    try {
      // Segments first: a fault there is named down to the segment.
      plain = openSealed(stored, await this.store.dataKey(rec.id)).plain;
    } catch (err) {
      if (err instanceof SealedStreamError) throw new ServiceError('integrity', `recording ${rec.id}: ${err.message}`);
      throw err;
    }
    if (rec.storedSha256 && sha256(stored) !== rec.storedSha256) throw new ServiceError('integrity', `recording ${rec.id}: the stored file does not match its SHA-256`);
    if (rec.audioSha256 && sha256(plain) !== rec.audioSha256) throw new ServiceError('integrity', `recording ${rec.id}: the audio does not match its SHA-256`);
    return plain;
  }
}

/** An RFC 3339 time or a date (midnight UTC) as the fixed-width UTC string the index sorts by. */
export function toUtcBound(value: string, name: string): string {
  const ms = parseDate(value) ?? parseRfc3339(value);
  if (ms === null) throw new ServiceError('bad_request', `--${name}: not an RFC 3339 time with offset or Z, nor a date YYYY-MM-DD: ${value}`);
  return toUtcString(ms);
}

const sha256 = (b: Buffer): string => createHash('sha256').update(b).digest('hex');
