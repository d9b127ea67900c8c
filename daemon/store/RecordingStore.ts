import { Level } from 'level';
import { isTombstone, type RecordingMeta, type RecordingRecord, type RecordingStatus } from './RecordingMeta.js';

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

type IndexName = 'start' | 'caller' | 'agent' | 'service';
const SEP = '\x00';
const END = '\x01';

/** The caller's index key: the E.164 form when there is one, else the verbatim string. */
export function callerKey(m: Pick<RecordingMeta, 'caller' | 'callerNormalized'>): string | null {
  if (m.callerNormalized) return m.callerNormalized;
  return m.caller ? `raw:${m.caller}` : null;
}

/**
 * Recording metadata in LevelDB: one record per id, and secondary indexes whose keys sort as bytes in
 * time order (`<value>\0<startedAt>\0<id>`; ISO-8601 UTC with fixed width sorts correctly).
 */
export class RecordingStore {
  private readonly records;
  private readonly indexes;

  private constructor(private readonly db: Level<string, string>) {
    this.records = db.sublevel<string, RecordingRecord>('rec', { valueEncoding: 'json' });
    this.indexes = {
      start: db.sublevel<string, string>('by-start', {}),
      caller: db.sublevel<string, string>('by-caller', {}),
      agent: db.sublevel<string, string>('by-agent', {}),
      service: db.sublevel<string, string>('by-service', {}),
    } satisfies Record<IndexName, unknown>;
  }

  static async open(dir: string): Promise<RecordingStore> {
    const db = new Level<string, string>(dir);
    try {
      await db.open();
    } catch (err) {
      const cause = (err as { cause?: { code?: string } }).cause;
      if (cause?.code === 'LEVEL_LOCKED') throw new Error(`the index ${dir} is locked: another callrecd is running with this dataDir`);
      throw new Error(`cannot open the index ${dir}: ${(cause as Error | undefined)?.message ?? (err as Error).message}`);
    }
    return new RecordingStore(db);
  }

  async close(): Promise<void> {
    await this.db.close();
  }

  async get(id: string): Promise<RecordingRecord | null> {
    return (await this.records.get(id)) ?? null;
  }

  /** Writes a record and keeps its index entries in step, in one atomic batch. */
  async put(rec: RecordingRecord): Promise<void> {
    const old = await this.get(rec.id);
    const ops: Array<{ type: 'put' | 'del'; key: string; value?: string; sublevel: unknown }> = [];
    const before = old && !isTombstone(old) ? indexKeys(old) : [];
    const after = isTombstone(rec) ? [] : indexKeys(rec);
    const afterSet = new Set(after.map(([n, k]) => `${n}/${k}`));
    for (const [name, key] of before) if (!afterSet.has(`${name}/${key}`)) ops.push({ type: 'del', key, sublevel: this.indexes[name] });
    for (const [name, key] of after) ops.push({ type: 'put', key, value: '', sublevel: this.indexes[name] });
    ops.push({ type: 'put', key: rec.id, value: rec as unknown as string, sublevel: this.records });
    await this.db.batch(ops as never);
  }

  /** Records matching `q`, sorted by start time. Tombstones (no start time) come last, by id. */
  async list(q: RecordingQuery = {}): Promise<RecordingRecord[]> {
    const [name, prefix] = pickIndex(q);
    const lower = prefix + (q.from ?? '');
    const upper = q.to !== undefined ? prefix + q.to : prefix.length > 0 ? prefix.slice(0, -1) + END : undefined;
    const out: RecordingRecord[] = [];
    const range = upper === undefined ? { gte: lower } : { gte: lower, lt: upper };
    for await (const key of this.indexes[name].keys(range)) {
      const id = key.slice(key.lastIndexOf(SEP) + 1);
      const rec = await this.get(id);
      if (!rec || isTombstone(rec) || !matches(rec, q)) continue;
      out.push(rec);
    }
    if (q.includeDestroyed) {
      for await (const rec of this.records.values()) if (isTombstone(rec)) out.push(rec);
    }
    return out;
  }

  async withStatus(status: RecordingStatus): Promise<RecordingMeta[]> {
    const out: RecordingMeta[] = [];
    for await (const rec of this.records.values()) if (rec.status === status && !isTombstone(rec)) out.push(rec);
    return out;
  }

  async count(): Promise<number> {
    let n = 0;
    for await (const _ of this.records.keys()) n++;
    return n;
  }
}

function indexKeys(m: RecordingMeta): Array<[IndexName, string]> {
  const tail = `${m.startedAt}${SEP}${m.id}`;
  const keys: Array<[IndexName, string]> = [['start', tail]];
  const caller = callerKey(m);
  if (caller) keys.push(['caller', `${caller}${SEP}${tail}`]);
  if (m.agentId) keys.push(['agent', `${m.agentId}${SEP}${tail}`]);
  keys.push(['service', `${m.serviceNumber}${SEP}${tail}`]);
  return keys;
}

function pickIndex(q: RecordingQuery): [IndexName, string] {
  if (q.caller !== undefined) return ['caller', q.caller + SEP];
  if (q.agentId !== undefined) return ['agent', q.agentId + SEP];
  if (q.serviceNumber !== undefined) return ['service', q.serviceNumber + SEP];
  return ['start', ''];
}

function matches(m: RecordingMeta, q: RecordingQuery): boolean {
  if (q.from !== undefined && m.startedAt < q.from) return false;
  if (q.to !== undefined && m.startedAt >= q.to) return false;
  if (q.caller !== undefined && callerKey(m) !== q.caller) return false;
  if (q.agentId !== undefined && m.agentId !== q.agentId) return false;
  if (q.serviceNumber !== undefined && m.serviceNumber !== q.serviceNumber) return false;
  return true;
}
