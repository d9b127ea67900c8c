import { createHash } from 'node:crypto';
import { constants } from 'node:fs';
import { readFile } from 'node:fs/promises';
import type { Config } from '../config/Config.js';
import type { Actor } from '../access/Actor.js';
import type { Scope } from '../access/permissions.js';
import { normalizeNumber } from '../calls/callerNumber.js';
import { wavBytes } from '../capture/wav.js';
import { epochOf } from '../keys/EpochKeyStore.js';
import { decodeOggOpus } from '../store/ogg/decodeOggOpus.js';
import { isTombstone, type RecordingMeta, type RecordingRecord, type RecordingTombstone } from '../store/RecordingMeta.js';
import { openSealed, SealedStreamError } from '../store/sealed/openSealed.js';
import { SealedReader } from '../store/sealed/SealedReader.js';
import { audioPath } from '../store/recordingPaths.js';
import { RECORDING_ID } from '../store/recordingId.js';
import type { IndexPosition, RecordingQuery, RecordingStore } from '../store/RecordingStore.js';
import type { Destroyer } from '../store/Destroyer.js';
import { parseDate, parseRfc3339, toUtcString } from '../time/rfc3339.js';
import { ServiceError } from './errors.js';
import type { Guard } from './Guard.js';
import { decodeCursor, encodeCursor } from './cursor.js';
import { presentRecord, type PresentedRecord } from './presentRecord.js';

export interface SearchParams {
  from?: string;
  to?: string;
  serviceNumber?: string;
  /** The adviser id. */
  agent?: string;
  /** Any written form of the number; matched on its E.164 form. */
  caller?: string;
  includeDestroyed?: boolean;
  /** By start time: `asc` (oldest first, the default) or `desc` (newest first). */
  order?: 'asc' | 'desc';
  limit?: number;
  cursor?: string;
}

export const SEARCH_LIMIT_MAX = 500;

/** The flag of a call marked as training material. */
export const TRAINING = 'training';

/** A recording's plain audio, opened for reading ranges of it (the API's `<audio>` answers). */
export interface AudioHandle {
  length: number;
  range(start: number, end: number): AsyncGenerator<Buffer>;
  close(): Promise<void>;
}

/**
 * Search, view, listen, export, destroy, verify: the one place the API and the CLI both go through.
 * Every method takes the actor, asks the Guard (permission matrix, then audit), and applies the
 * actor's scope: an agent's reach is the calls whose adviser id is its own, whatever the filter, id or
 * cursor it sends; a call out of reach is answered exactly like one that does not exist.
 */
export class CallService {
  /** Listening dedup: one `calls.listen` entry per session and recording per 10 minutes, not one per Range request. */
  private readonly heard = new Map<string, number>();

  constructor(private readonly cfg: Config, private readonly store: RecordingStore, private readonly destroyer: Destroyer, private readonly guard: Guard) {}

  async search(actor: Actor, p: SearchParams): Promise<{ items: Array<PresentedRecord | RecordingTombstone>; nextCursor: string | null }> {
    return this.guard.run(actor, 'calls.search', 'calls.search', { details: this.auditedFilters(p) }, async (scope) => {
      const limit = p.limit ?? 50;
      if (!Number.isInteger(limit) || limit < 1 || limit > SEARCH_LIMIT_MAX) throw new ServiceError('bad_request', `limit: an integer 1-${SEARCH_LIMIT_MAX}`);
      if (p.order !== undefined && p.order !== 'asc' && p.order !== 'desc') throw new ServiceError('bad_request', 'order: asc or desc');
      const q = this.query(actor, scope, p);
      if (!q) return { items: [], nextCursor: null };
      const unmasked = this.guard.scope(actor, 'calls.subjectRequests') !== null;
      const cursor = p.cursor === undefined ? null : decodeCursor(p.cursor);
      const items: Array<PresentedRecord | RecordingTombstone> = [];
      let next: string | null = null;
      if (!cursor || cursor.phase === 'live') {
        // A number searched by someone who may not see hidden numbers never finds a call that hid it.
        const accept = (m: RecordingMeta): boolean => unmasked || q.caller === undefined || m.callerPresentation !== 'restricted';
        const page = await this.store.page(q, cursor?.phase === 'live' ? cursor.at : null, limit, accept, p.order === 'desc' ? 'desc' : 'asc');
        items.push(...page.records.map((m) => presentRecord(m, unmasked)));
        if (page.last) next = encodeCursor({ phase: 'live', at: page.last });
        else if (p.includeDestroyed && scope === 'all') next = encodeCursor({ phase: 'destroyed', afterId: '' });
      }
      if (cursor?.phase === 'destroyed' && scope === 'all' && p.includeDestroyed) {
        const page = await this.store.tombstones(cursor.afterId, limit);
        items.push(...page);
        if (page.length === limit) next = encodeCursor({ phase: 'destroyed', afterId: page[page.length - 1]!.id });
      }
      return { items, nextCursor: next };
    });
  }

  async show(actor: Actor, id: string): Promise<PresentedRecord | RecordingRecord> {
    return this.guard.run(actor, 'calls.view', 'calls.search', { target: recordingTarget(id) }, async (scope) => {
      const rec = await this.reachable(actor, scope, id, true);
      return isTombstone(rec) ? rec : presentRecord(rec, this.guard.scope(actor, 'calls.subjectRequests') !== null);
    });
  }

  /** Opens a finished recording's audio for listening; the caller closes the handle. */
  async listen(actor: Actor, id: string): Promise<AudioHandle> {
    const key = `${actor.sessionId}/${id}`;
    const seen = this.heard.get(key);
    const now = performance.now();
    const open = async (scope: Scope): Promise<AudioHandle> => {
      const rec = await this.finished(await this.reachable(actor, scope, id, false), id);
      const dataKey = await this.store.dataKey(rec.id);
      let reader: SealedReader;
      try {
        reader = await SealedReader.open(audioPath(this.cfg.dataDir, rec.id, rec.startedAt));
      } catch (err) {
        if (err instanceof SealedStreamError) throw new ServiceError('integrity', `recording ${rec.id}: ${err.message}`);
        if ((err as NodeJS.ErrnoException).code === 'ELOOP') throw new ServiceError('integrity', `recording ${rec.id}: its audio file is a symbolic link (refused)`);
        throw err;
      }
      return {
        length: reader.plainLength,
        range: (start, end) => reader.range(dataKey, start, end),
        close: () => reader.close(),
      };
    };
    if (seen !== undefined && now - seen < 600_000) {
      const scope = this.guard.scope(actor, 'calls.listen');
      if (scope) return open(scope);
    }
    const handle = await this.guard.run(actor, 'calls.listen', 'calls.listen', { target: recordingTarget(id) }, open);
    this.heard.set(key, now);
    if (this.heard.size > 10_000) for (const [k, t] of this.heard) if (now - t > 600_000) this.heard.delete(k);
    return handle;
  }

  /** The recording's audio as Ogg Opus, or decoded to WAV at the line's rate; checked against its hashes. */
  async export(actor: Actor, id: string, format: 'opus' | 'wav'): Promise<Buffer> {
    return this.guard.run(actor, 'calls.export', 'calls.export', { target: recordingTarget(id), details: { format } }, async (scope) => {
      const rec = await this.finished(await this.reachable(actor, scope, id, false), id);
      const bytes = await this.plainAudio(rec);
      return format === 'opus' ? bytes : wavBytes(decodeOggOpus(bytes, rec.codec.sampleRate));
    });
  }

  /** Marks a finished call as training material, or takes the mark off (the flag `training`). */
  async markTraining(actor: Actor, id: string, marked: boolean): Promise<PresentedRecord> {
    return this.guard.run(actor, 'calls.training', 'calls.markTraining', { mutates: true, target: recordingTarget(id), details: { marked } }, async (scope) => {
      const rec = await this.finished(await this.reachable(actor, scope, id, false), id);
      const flags = rec.flags.filter((f) => f !== TRAINING);
      if (marked) flags.push(TRAINING);
      const next = { ...rec, flags };
      if (flags.length !== rec.flags.length || marked !== rec.flags.includes(TRAINING)) await this.store.put(next);
      return presentRecord(next, this.guard.scope(actor, 'calls.subjectRequests') !== null);
    });
  }

  /** Destroys a recording for good (an objection); retention uses the same Destroyer. */
  async destroy(actor: Actor, id: string, reason: string): Promise<RecordingRecord> {
    // The reason stays with the tombstone; the trail keeps only its length (free text may name people).
    return this.guard.run(actor, 'calls.destroy', 'calls.destroy', { mutates: true, target: recordingTarget(id), details: { reasonChars: reason.length } }, async (scope) => {
      if (!reason.trim()) throw new ServiceError('bad_request', 'a reason is required');
      if (reason.length > 200) throw new ServiceError('bad_request', 'a reason has at most 200 characters (why, never who)');
      const rec = await this.reachable(actor, scope, id, true);
      if (!isTombstone(rec) && rec.status === 'recording') throw new ServiceError('conflict', `recording ${id} is still being recorded: destroy it once it ends`);
      const role = actor.roles.find((r) => this.guard.scope({ ...actor, roles: [r] }, 'calls.destroy') !== null) ?? actor.roles[0]!;
      return this.destroyer.destroy(id, reason, role);
    });
  }

  /** Ids of the finished recordings, for `callrec verify --all` (which checks them one by one, with progress). */
  async verifiableIds(actor: Actor): Promise<string[]> {
    return this.guard.run(actor, 'system.verify', 'system.verify', { details: { all: true } }, async () => {
      const ids: string[] = [];
      for await (const rec of this.store.all()) if (!isTombstone(rec) && rec.status !== 'recording') ids.push(rec.id);
      return ids;
    });
  }

  /** Rechecks one recording: stored hash, every segment's tag, the plain audio's hash. Opens no content to the caller. */
  async verify(actor: Actor, id: string): Promise<{ id: string; ok: boolean; problem?: string }> {
    return this.guard.run(actor, 'system.verify', 'system.verify', { target: recordingTarget(id) }, async () => {
      const rec = await this.byId(id);
      if (isTombstone(rec)) return { id, ok: true };
      try {
        await this.plainAudio(rec);
        return { id, ok: true };
      } catch (err) {
        if (err instanceof ServiceError && err.code === 'integrity') return { id, ok: false, problem: err.message };
        if ((err as NodeJS.ErrnoException).code === 'ENOENT') return { id, ok: false, problem: `recording ${id}: its audio file is missing` };
        throw err;
      }
    });
  }

  /** The store query for `p` within the actor's scope, or null when the scope leaves nothing to find. */
  private query(actor: Actor, scope: Scope, p: SearchParams): RecordingQuery | null {
    let agentId = p.agent;
    if (scope === 'own') {
      if (actor.agentId === null || (agentId !== undefined && agentId !== actor.agentId)) return null;
      agentId = actor.agentId;
    }
    return {
      ...(p.from !== undefined ? { from: toUtcBound(p.from, 'from') } : {}),
      ...(p.to !== undefined ? { to: toUtcBound(p.to, 'to') } : {}),
      ...(p.caller !== undefined ? { caller: this.callerKey(p.caller) } : {}),
      ...(agentId !== undefined ? { agentId } : {}),
      ...(p.serviceNumber !== undefined ? { serviceNumber: p.serviceNumber } : {}),
    };
  }

  private callerKey(caller: string): string {
    return normalizeNumber(caller, this.cfg.phone.defaultRegion) ?? `raw:${caller}`;
  }

  /**
   * The filters as the audit keeps them: a caller number, adviser id or service number only as a keyed
   * hash under this month's index key (so it dies with the month, and equals the index's own hash for
   * that month); a time only if it is one.
   */
  private auditedFilters(p: SearchParams): Record<string, unknown> {
    const epoch = epochOf(Date.now());
    const hashed = (kind: 'caller' | 'agent' | 'service', v: string): { epoch: string; hash: string } => ({ epoch, hash: this.store.keys.indexHash(epoch, kind, v) });
    const time = (v: string): string => (parseDate(v) ?? parseRfc3339(v)) !== null ? v : '(invalid)';
    return {
      ...(p.from !== undefined ? { from: time(p.from) } : {}),
      ...(p.to !== undefined ? { to: time(p.to) } : {}),
      ...(p.caller !== undefined ? { caller: hashed('caller', this.callerKey(p.caller)) } : {}),
      ...(p.agent !== undefined ? { agent: hashed('agent', p.agent) } : {}),
      ...(p.serviceNumber !== undefined ? { serviceNumber: hashed('service', p.serviceNumber) } : {}),
      ...(p.includeDestroyed ? { includeDestroyed: true } : {}),
      ...(p.order === 'desc' ? { order: 'desc' } : {}),
    };
  }

  private async byId(id: string): Promise<RecordingRecord> {
    if (!RECORDING_ID.test(id)) throw new ServiceError('not_found', `no recording ${JSON.stringify(id.slice(0, 64))}`);
    const rec = await this.store.get(id);
    if (!rec) throw new ServiceError('not_found', `no recording ${id}`);
    return rec;
  }

  /** The record, if the actor's scope reaches it; otherwise exactly the answer for a missing id. */
  private async reachable(actor: Actor, scope: Scope, id: string, tombstones: boolean): Promise<RecordingRecord> {
    const rec = await this.byId(id).catch((err: unknown) => {
      throw err instanceof ServiceError ? new ServiceError('not_found', `no recording ${JSON.stringify(id.slice(0, 64))}`) : err;
    });
    const outOfReach = scope === 'own' && (isTombstone(rec) || actor.agentId === null || rec.agentId !== actor.agentId);
    if (outOfReach) throw new ServiceError('not_found', `no recording ${JSON.stringify(id)}`);
    if (isTombstone(rec) && !tombstones) throw new ServiceError('not_found', `recording ${id} was destroyed`);
    return rec;
  }

  private async finished(rec: RecordingRecord, id: string): Promise<RecordingMeta> {
    if (isTombstone(rec)) throw new ServiceError('not_found', `recording ${id} was destroyed`);
    if (rec.status === 'recording') throw new ServiceError('conflict', `recording ${id} is still being recorded`);
    return rec;
  }

  /** The plain Ogg Opus of a finished recording, after every check: stored hash, each segment's tag, plain hash. */
  private async plainAudio(rec: RecordingMeta): Promise<Buffer> {
    const stored = await readFile(audioPath(this.cfg.dataDir, rec.id, rec.startedAt), { flag: constants.O_RDONLY | constants.O_NOFOLLOW }).catch((err: NodeJS.ErrnoException) => {
      throw err.code === 'ELOOP' ? new ServiceError('integrity', `recording ${rec.id}: its audio file is a symbolic link (refused)`) : err;
    });
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
  if (ms === null) throw new ServiceError('bad_request', `${name}: not an RFC 3339 time with offset or Z, nor a date YYYY-MM-DD: ${value}`);
  return toUtcString(ms);
}

const sha256 = (b: Buffer): string => createHash('sha256').update(b).digest('hex');

/** A recording id as the trail keeps it; anything else a client typed (a number, a path) is not kept. */
export function recordingTarget(id: string): string {
  return typeof id === 'string' && RECORDING_ID.test(id) ? id : '(not an id)';
}
