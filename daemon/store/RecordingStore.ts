import { Level } from 'level';
import { epochOf, type Epoch } from '../keys/EpochKeyStore.js';
import type { KeyRing } from '../keys/KeyRing.js';
import { replaceFileDurably } from './durableWrite.js';
import { isTombstone, type RecordingMeta, type RecordingRecord, type RecordingStatus, type RecordingTombstone } from './RecordingMeta.js';
import { openRecord, sealRecord, type StoredRecord, type StoredRecording } from './StoredRecord.js';

export interface RecordingQuery {
  /** Inclusive lower bound on startedAt (RFC 3339 UTC). */
  from?: string;
  /** Exclusive upper bound on startedAt. */
  to?: string;
  /** The caller's index key (see `callerKey`). */
  caller?: string;
  agentId?: string;
  serviceNumber?: string;
  includeDestroyed?: boolean;
}

/** A place in the start-time order: the last record a page gave out. */
export interface IndexPosition {
  startedAt: string;
  id: string;
}

type HashedIndex = 'caller' | 'agent' | 'service';
type IndexName = 'start' | HashedIndex;
const SEP = '\x00';
const END = '\x01';

/** The caller's index key: the E.164 form when there is one, else the verbatim string. */
export function callerKey(m: Pick<RecordingMeta, 'caller' | 'callerNormalized'>): string | null {
  if (m.callerNormalized) return m.callerNormalized;
  return m.caller ? `raw:${m.caller}` : null;
}

export class StoreError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'StoreError';
  }
}

/**
 * Recording metadata in LevelDB, and a sealed sidecar file beside each recording's audio (so the index
 * can be rebuilt from the files alone). Nothing personal is stored in the clear: personal fields are
 * sealed under the recording's data key, and the caller, adviser and service number indexes are keyed
 * hashes under the month's index key: `<epoch>\0<hash>\0<startedAt>\0<id>`; the start-time index is
 * `<startedAt>\0<id>`. ISO-8601 UTC with fixed width sorts correctly as bytes.
 */
export class RecordingStore {
  private readonly records;
  private readonly indexes;

  private constructor(private readonly db: Level<string, string>, readonly keys: KeyRing, private readonly sidecarPath: (id: string, startedAt: string) => string) {
    this.records = db.sublevel<string, StoredRecord>('rec', { valueEncoding: 'json' });
    this.indexes = {
      start: db.sublevel<string, string>('by-start', {}),
      caller: db.sublevel<string, string>('by-caller', {}),
      agent: db.sublevel<string, string>('by-agent', {}),
      service: db.sublevel<string, string>('by-service', {}),
    } satisfies Record<IndexName, unknown>;
  }

  /**
   * Opens the index. A lock held by another process (a second instance, or the previous one still
   * stopping) is waited for with back-off, `lockWaitMs` in all, then refused with a clear error, so
   * systemd's restarts do not become a crash loop.
   */
  static async open(dir: string, keys: KeyRing, sidecarPath: (id: string, startedAt: string) => string, lockWaitMs = 10_000): Promise<RecordingStore> {
    const started = Date.now();
    for (let delay = 200; ; delay = Math.min(delay * 2, 2000)) {
      const db = new Level<string, string>(dir);
      try {
        await db.open();
        return new RecordingStore(db, keys, sidecarPath);
      } catch (err) {
        const cause = (err as { cause?: { code?: string } }).cause;
        if (cause?.code !== 'LEVEL_LOCKED') throw new StoreError(`cannot open the index ${dir}: ${(cause as Error | undefined)?.message ?? (err as Error).message}: if it is damaged, stop callrecd and run \`callrec db rebuild --offline --config FILE\``);
        if (Date.now() - started + delay > lockWaitMs) throw new StoreError(`the index ${dir} is locked: another callrecd is running with this dataDir (waited ${Math.round((Date.now() - started) / 1000)} s)`);
        await new Promise((r) => setTimeout(r, delay));
      }
    }
  }

  async close(): Promise<void> {
    await this.db.close();
  }

  /** A new recording: makes its data key (returned, for the encoder) and stores its first record. */
  async create(meta: RecordingMeta): Promise<Buffer> {
    const epoch = epochOf(Date.parse(meta.startedAt));
    const { key, wrapped } = this.keys.newDataKey(meta.id, epoch);
    await this.write(null, sealRecord(meta, { epoch, wrappedKey: wrapped, storedBytes: meta.storedBytes, storedSha256: meta.storedSha256 }, key), meta);
    return key;
  }

  /** Updates a recording made by `create`. */
  async put(meta: RecordingMeta): Promise<void> {
    const old = await this.stored(meta.id);
    if (!old || isTombstone(old)) throw new StoreError(`no recording ${meta.id} to update`);
    const key = this.keys.openDataKey(old.id, old.epoch, old.wrappedKey);
    await this.write(old, sealRecord(meta, { epoch: old.epoch, wrappedKey: old.wrappedKey, storedBytes: meta.storedBytes, storedSha256: meta.storedSha256 }, key), meta);
  }

  /** Restores a record from its sidecar (`callrec db rebuild`). */
  async restore(rec: StoredRecording): Promise<void> {
    const key = this.keys.openDataKey(rec.id, rec.epoch, rec.wrappedKey);
    await this.write(await this.stored(rec.id), rec, openRecord(rec, key), false);
  }

  /** Destruction's step 2: the record becomes a tombstone and its index entries go, in one batch. */
  async replaceWithTombstone(tomb: RecordingTombstone): Promise<void> {
    await this.write(await this.stored(tomb.id), tomb, null, false);
  }

  /** Rewrites LevelDB's tables so deleted values leave them (they also leave its log on the next rotation). */
  async compact(): Promise<void> {
    // level's types omit classic-level's compactRange.
    await (this.db as unknown as { compactRange(start: string, end: string): Promise<void> }).compactRange('\x00', '\uffff');
  }

  async dataKey(id: string): Promise<Buffer> {
    const rec = await this.stored(id);
    if (!rec || isTombstone(rec)) throw new StoreError(`recording ${id} has no key`);
    return this.keys.openDataKey(rec.id, rec.epoch, rec.wrappedKey);
  }

  async stored(id: string): Promise<StoredRecord | null> {
    return (await this.records.get(id)) ?? null;
  }

  async get(id: string): Promise<RecordingRecord | null> {
    const rec = await this.stored(id);
    if (!rec || isTombstone(rec)) return rec;
    return openRecord(rec, this.keys.openDataKey(rec.id, rec.epoch, rec.wrappedKey));
  }

  /** Records matching `q`, sorted by start time. Tombstones (no start time) come last. */
  async list(q: RecordingQuery = {}): Promise<RecordingRecord[]> {
    const out: RecordingRecord[] = (await this.page(q, null, Infinity)).records;
    if (q.includeDestroyed) {
      for await (const rec of this.records.values()) if (isTombstone(rec)) out.push(rec);
    }
    return out;
  }

  /**
   * Up to `limit` live records matching `q` (and `accept`), in start-time order (`desc`: newest first),
   * strictly beyond the position `after` (the last one of the previous page). `last` is where the next page starts, or null
   * when the walk reached the end of the index.
   */
  async page(q: RecordingQuery, after: IndexPosition | null, limit: number, accept: (m: RecordingMeta) => boolean = () => true, order: 'asc' | 'desc' = 'asc'): Promise<{ records: RecordingMeta[]; last: IndexPosition | null }> {
    const out: RecordingMeta[] = [];
    const skip = this.prefilter(q);
    const ranges = this.ranges(q);
    if (order === 'desc') ranges.reverse(); // epochs are months: later months first
    for (const [name, prefix] of ranges) {
      const lower = prefix + (q.from ?? '');
      const upper = q.to !== undefined ? prefix + q.to : prefix.length > 0 ? prefix.slice(0, -1) + END : undefined;
      const resume = after ? `${prefix}${after.startedAt}${SEP}${after.id}` : null;
      const range: { gte?: string; gt?: string; lt?: string; lte?: string; reverse?: boolean } = {};
      if (order === 'asc') {
        if (upper !== undefined && resume !== null && resume >= upper) continue;
        if (resume !== null && resume >= lower) range.gt = resume;
        else range.gte = lower;
        if (upper !== undefined) range.lt = upper;
      } else {
        if (resume !== null && resume <= lower) continue;
        range.gte = lower;
        if (resume !== null && (upper === undefined || resume < upper)) range.lt = resume;
        else if (upper !== undefined) range.lt = upper;
        range.reverse = true;
      }
      const it = this.indexes[name].iterator(range);
      try {
        // Index entries in batches, their records in one read each: far fewer trips through the thread pool.
        for (;;) {
          const batch = await it.nextv(Math.max(16, Math.min(256, (limit - out.length) * 2)));
          if (batch.length === 0) break;
          const ids = batch.filter(([key, value]) => !skip(name, key, value)).map(([key]) => key.slice(key.lastIndexOf(SEP) + 1));
          const stored = ids.length > 0 ? await this.records.getMany(ids) : [];
          for (const s of stored) {
            if (!s || isTombstone(s)) continue;
            const rec = openRecord(s, this.keys.openDataKey(s.id, s.epoch, s.wrappedKey));
            if (matches(rec, q) && accept(rec)) {
              out.push(rec);
              if (out.length >= limit) return { records: out, last: { startedAt: rec.startedAt, id: rec.id } };
            }
          }
        }
      } finally {
        await it.close();
      }
    }
    return { records: out, last: null };
  }

  /**
   * Whether an index entry can be passed over unread: each entry's value holds its record's epoch and
   * keyed hashes (the ones its entries in the other indexes carry anyway, under the same epoch key), so
   * a second or third filter is checked before the record is read and opened. An empty value (an entry written before values were)
   * is never skipped: the record decides.
   */
  private prefilter(q: RecordingQuery): (index: IndexName, key: string, value: string) => boolean {
    const filters = (['caller', 'agent', 'service'] as const).flatMap((f) => {
      const v = f === 'caller' ? q.caller : f === 'agent' ? q.agentId : q.serviceNumber;
      return v === undefined ? [] : [[f, v] as const];
    });
    if (filters.length === 0) return () => false;
    const perEpoch = new Map<Epoch, Partial<Record<HashedIndex, string>>>();
    const wanted = (epoch: Epoch): Partial<Record<HashedIndex, string>> => {
      let w = perEpoch.get(epoch);
      if (!w) {
        w = Object.fromEntries(filters.map(([f, v]) => [f, this.keys.indexHash(epoch, f, v)]));
        perEpoch.set(epoch, w);
      }
      return w;
    };
    return (index, key, value) => {
      if (!value) return false;
      const have = JSON.parse(value) as Partial<Record<HashedIndex | 'epoch', string>>;
      if (have.epoch === undefined) return false;
      const want = wanted(have.epoch);
      return filters.some(([f]) => f !== index && have[f] !== want[f]);
    };
  }

  /** Up to `limit` tombstones with ids after `afterId`, in id order. */
  async tombstones(afterId: string, limit: number): Promise<RecordingTombstone[]> {
    const out: RecordingTombstone[] = [];
    for await (const rec of this.records.values({ gt: afterId })) {
      if (isTombstone(rec)) out.push(rec);
      if (out.length >= limit) break;
    }
    return out;
  }

  async withStatus(status: RecordingStatus): Promise<RecordingMeta[]> {
    const out: RecordingMeta[] = [];
    for await (const rec of this.records.values()) if (rec.status === status && !isTombstone(rec)) out.push((await this.get(rec.id)) as RecordingMeta);
    return out;
  }

  async count(): Promise<number> {
    let n = 0;
    for await (const _ of this.records.keys()) n++;
    return n;
  }

  /** Every stored record (for verification and destruction sweeps). */
  async *all(): AsyncGenerator<StoredRecord> {
    for await (const rec of this.records.values()) yield rec;
  }

  private async write(old: StoredRecord | null, rec: StoredRecord, meta: RecordingMeta | null, sidecar = true): Promise<void> {
    const before = old && !isTombstone(old) ? indexKeys(old, this.oldMetaKeys(old)) : [];
    const after = isTombstone(rec) || !meta ? [] : indexKeys(rec, this.metaKeys(rec.epoch, meta));
    const afterSet = new Set(after.map(([n, k]) => `${n}/${k}`));
    const ops: Array<{ type: 'put' | 'del'; key: string; value?: unknown; sublevel: unknown }> = [];
    for (const [name, key] of before) if (!afterSet.has(`${name}/${key}`)) ops.push({ type: 'del', key, sublevel: this.indexes[name] });
    const hashes = isTombstone(rec) || !meta ? '' : JSON.stringify({ epoch: rec.epoch, ...this.metaKeys(rec.epoch, meta) });
    for (const [name, key] of after) ops.push({ type: 'put', key, value: hashes, sublevel: this.indexes[name] });
    ops.push({ type: 'put', key: rec.id, value: rec, sublevel: this.records });
    if (sidecar && !isTombstone(rec)) replaceFileDurably(this.sidecarPath(rec.id, rec.startedAt), `${JSON.stringify(rec)}\n`);
    await this.db.batch(ops as never);
  }

  private metaKeys(epoch: Epoch, m: RecordingMeta): Partial<Record<HashedIndex, string>> {
    const caller = callerKey(m);
    return {
      ...(caller ? { caller: this.keys.indexHash(epoch, 'caller', caller) } : {}),
      ...(m.agentId ? { agent: this.keys.indexHash(epoch, 'agent', m.agentId) } : {}),
      service: this.keys.indexHash(epoch, 'service', m.serviceNumber),
    };
  }

  /** The hashes an existing record was indexed under (its personal fields opened to recompute them). */
  private oldMetaKeys(old: StoredRecording): Partial<Record<HashedIndex, string>> {
    return this.metaKeys(old.epoch, openRecord(old, this.keys.openDataKey(old.id, old.epoch, old.wrappedKey)));
  }

  /** The index ranges to walk for `q`: by start time, or one per live epoch for a hashed key. */
  private ranges(q: RecordingQuery): Array<[IndexName, string]> {
    const [name, value] = q.caller !== undefined ? (['caller', q.caller] as const) : q.agentId !== undefined ? (['agent', q.agentId] as const) : q.serviceNumber !== undefined ? (['service', q.serviceNumber] as const) : ([null, null] as const);
    if (!name) return [['start', '']];
    return [...this.keys.epochs.epochs()].sort().map((epoch) => [name, `${epoch}${SEP}${this.keys.indexHash(epoch, name, value!)}${SEP}`]);
  }
}

function indexKeys(rec: StoredRecording, hashes: Partial<Record<HashedIndex, string>>): Array<[IndexName, string]> {
  const tail = `${rec.startedAt}${SEP}${rec.id}`;
  const keys: Array<[IndexName, string]> = [['start', tail]];
  for (const name of ['caller', 'agent', 'service'] as const) {
    const h = hashes[name];
    if (h) keys.push([name, `${rec.epoch}${SEP}${h}${SEP}${tail}`]);
  }
  return keys;
}

function matches(m: RecordingMeta, q: RecordingQuery): boolean {
  if (q.from !== undefined && m.startedAt < q.from) return false;
  if (q.to !== undefined && m.startedAt >= q.to) return false;
  if (q.caller !== undefined && callerKey(m) !== q.caller) return false;
  if (q.agentId !== undefined && m.agentId !== q.agentId) return false;
  if (q.serviceNumber !== undefined && m.serviceNumber !== q.serviceNumber) return false;
  return true;
}
