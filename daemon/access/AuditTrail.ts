/**
 * The audit trail: an append-only, hash-chained JSON-lines file of who did what, anchored by MAC'd heads
 * (head.json, a digest per UTC day, and a log line per head for the journal). docs/security.md, "Audit
 * trail", says what it proves and what it does not. The pure half (canonical JSON, hashes, MACs, the
 * checker) is in auditChain.ts.
 *
 *     <dir>/trail.jsonl              one entry per line, appended with one write + fdatasync per batch
 *     <dir>/head.json                the latest published head, replaced durably
 *     <dir>/digests/YYYY-MM-DD.json  one per UTC day: first and last seq, count, the head at its end
 */
import { constants, createReadStream, existsSync, fstatSync, mkdirSync, readdirSync, readFileSync } from 'node:fs';
import { open as openFile, readFile, rename, type FileHandle } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import type { Logger } from 'pino';
import type { MasterKey } from '../keys/MasterKey.js';
import { protectKey } from '../keys/protectKey.js';
import { syncDir } from '../store/durableWrite.js';
import { parseRfc3339, toUtcString } from '../time/rfc3339.js';
import {
  canonicalJSON,
  chainHash,
  ChainChecker,
  checkDigest,
  checkHead,
  dayOf,
  deriveAuditKey,
  HEX64,
  headMac,
  OUTCOMES,
  parseEntry,
  sortProblems,
  VIAS,
  ZERO_HASH,
  type Anchor,
  type AuditDigest,
  type AuditProblem,
} from './auditChain.js';

export interface AuditActor {
  user: string | null;
  roles: string[];
  via: 'api' | 'cli' | 'system';
  /** An IP address, `uid:N`, or `daemon`. */
  from: string;
}
export type AuditOutcome = 'ok' | 'denied' | 'failed' | 'not_found' | 'bad_request' | 'started';
/** Ids, roles, outcomes: never audio or personal data (caller numbers, names): the caller's job. */
export interface AuditInput {
  actor: AuditActor;
  action: string;
  target?: string;
  details?: Record<string, unknown>;
  outcome: AuditOutcome;
}
export interface AuditEntry extends AuditInput {
  seq: number;
  /** UTC RFC 3339 with ms (Date#toISOString). */
  at: string;
  prev: string;
  hash: string;
}
export interface AuditHead {
  seq: number;
  hash: string;
  at: string;
  keyId: string;
  mac: string;
}
export interface AuditQuery {
  /** Inclusive, RFC 3339. */
  from?: string;
  /** Exclusive, RFC 3339. */
  to?: string;
  user?: string;
  action?: string;
  target?: string;
  afterSeq?: number;
  limit: number;
}
export interface AuditVerifyResult {
  ok: boolean;
  entries: number;
  head: { seq: number; hash: string } | null;
  problems: Array<{ seq: number | null; kind: 'edited' | 'removed' | 'reordered' | 'cut_tail' | 'torn' | 'bad_head' | 'no_head'; message: string }>;
}

export type { AuditDigest, AuditProblem } from './auditChain.js';

/** A write that failed (the entries in it are refused), or a trail that can no longer be written. */
export class AuditTrailError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'AuditTrailError';
  }
}

const SYSTEM: AuditActor = { user: null, roles: [], via: 'system', from: 'daemon' };
const DIGEST_FILE = /^(\d{4}-\d{2}-\d{2})\.json$/;

/** The day an entry counts to, and the first seq of that day. */
interface Day {
  date: string;
  firstSeq: number;
}
/** The end of the chain: seq 0 and ZERO_HASH when empty. */
interface Tip {
  seq: number;
  hash: string;
  day: Day | null;
}
interface ClosedDay {
  date: string;
  firstSeq: number;
  lastSeq: number;
  hash: string;
}
interface Pending {
  entry: AuditEntry;
  line: string;
  day: Day;
  closes: ClosedDay | null;
  resolve: (e: AuditEntry) => void;
  reject: (err: Error) => void;
}
/** head.json or a digest as found on disk. */
interface AnchorFile {
  path: string;
  source: string;
  text: string;
  kind: 'head' | 'digest';
  head?: AuditHead;
  digest?: AuditDigest;
  error?: { message: string; seq: number | null };
}
interface Scan {
  problems: AuditProblem[];
  consistent: boolean[];
  entries: number;
  head: { seq: number; hash: string } | null;
  lastSeq: number;
  /** Consecutive runs of entries by UTC day (a day starts when an entry's day is later than the run's). */
  days: ClosedDay[];
  completeEnd: number;
  tornBytes: number;
  /** When the first entry was written (for the no-head rule). */
  firstAt: string | null;
}

export class AuditTrail {
  private readonly trailPath: string;
  private readonly headPath: string;
  private readonly digestDir: string;
  /** Audit keys by master key id. */
  private readonly auditKeys = new Map<string, Buffer>();
  private readonly keyId: string;
  private readonly auditKey: Buffer;
  private durable: Tip = { seq: 0, hash: ZERO_HASH, day: null };
  private assigned: Tip = { seq: 0, hash: ZERO_HASH, day: null };
  private durableSize = 0;
  private pending: Pending[] = [];
  private flushing: Promise<void> | null = null;
  private broken: Error | null = null;
  private closed = false;
  private closing: Promise<void> | null = null;
  private lastPublishedSeq: number | null = null;
  /** Anchor files as the daemon wrote them or found them agreeing with the chain: only these are replaced. */
  private readonly known = new Map<string, string>();
  private readonly refused = new Set<string>();
  private timer: NodeJS.Timeout | null = null;
  /** Writes of head.json and digests, one after the other. */
  private anchorWrites: Promise<unknown> = Promise.resolve();

  private constructor(
    private readonly dir: string,
    private readonly fh: FileHandle,
    keys: { current: MasterKey; all: MasterKey[] },
    private readonly log: Logger,
    private readonly headEveryMs: number,
    private readonly now: () => Date,
  ) {
    this.trailPath = join(dir, 'trail.jsonl');
    this.headPath = join(dir, 'head.json');
    this.digestDir = join(dir, 'digests');
    for (const k of [keys.current, ...keys.all]) {
      if (!this.auditKeys.has(k.id)) this.auditKeys.set(k.id, protectKey(deriveAuditKey(k.key)));
    }
    this.keyId = keys.current.id;
    this.auditKey = this.auditKeys.get(keys.current.id)!;
  }

  /**
   * Opens (or makes) the trail in `dir`: recomputes the chain from the file, cuts a torn last line off
   * (and records that), logs an error when the trail is damaged (it still opens: verify names the damage),
   * re-MACs heads and digests made under an older master key in `keys.all`, writes missing digests of
   * past days, and publishes a head when the file is ahead of head.json.
   */
  static async open(
    dir: string,
    keys: { current: MasterKey; all: MasterKey[] },
    log: Logger,
    opts: { headEveryMs?: number; now?: () => Date } = {},
  ): Promise<AuditTrail> {
    const headEveryMs = opts.headEveryMs ?? 60_000;
    if (!(headEveryMs > 0 && headEveryMs < 2 ** 31)) throw new RangeError(`audit trail: headEveryMs must be above 0 and below 2^31 (${headEveryMs})`);
    mkdirSync(join(dir, 'digests'), { recursive: true, mode: 0o750 });
    const trailPath = join(dir, 'trail.jsonl');
    const created = !existsSync(trailPath);
    const fh = await openFile(trailPath, constants.O_RDWR | constants.O_CREAT | constants.O_APPEND, 0o640);
    try {
      if (created) syncDir(dir);
      const trail = new AuditTrail(dir, fh, keys, log, headEveryMs, opts.now ?? (() => new Date()));
      await trail.start();
      return trail;
    } catch (err) {
      await fh.close().catch(() => undefined);
      throw err;
    }
  }

  /** The last durable entry's seq and hash (null while the trail is empty). */
  get head(): { seq: number; hash: string } | null {
    return this.durable.seq === 0 ? null : { seq: this.durable.seq, hash: this.durable.hash };
  }

  /**
   * Adds an entry. Its seq, time and hash are fixed now (so the trail's order is the order of the calls);
   * the promise resolves once it is on disk (fdatasync), together with every entry that came while the
   * previous write was in flight. If the write fails it rejects (the caller then refuses the action), as
   * do the entries queued behind it, and the file is cut back to its last durable entry; if even that
   * fails, every later append rejects until a restart.
   */
  append(input: AuditInput): Promise<AuditEntry> {
    try {
      if (this.closed) throw new AuditTrailError('the audit trail is closed');
      if (this.broken) throw this.brokenError();
      const body = entryBody(input);
      const at = toUtcString(this.now().getTime());
      const seq = this.assigned.seq + 1;
      const prev = this.assigned.hash;
      const canonical = canonicalJSON({ ...body, seq, at, prev });
      const hash = chainHash(prev, canonical);
      const entry = { ...(JSON.parse(canonical) as Omit<AuditEntry, 'hash'>), hash } as AuditEntry;
      const line = `${canonicalJSON(entry)}\n`;
      let day = this.assigned.day;
      let closes: ClosedDay | null = null;
      const date = dayOf(at);
      if (!day) day = { date, firstSeq: seq };
      else if (date > day.date) {
        closes = { date: day.date, firstSeq: day.firstSeq, lastSeq: seq - 1, hash: prev };
        day = { date, firstSeq: seq };
      }
      this.assigned = { seq, hash, day };
      return new Promise<AuditEntry>((resolve, reject) => {
        this.pending.push({ entry, line, day, closes, resolve, reject });
        this.kick();
      });
    } catch (err) {
      return Promise.reject(err);
    }
  }

  /**
   * Entries matching every given filter (from inclusive, to exclusive, on `at`; user is actor.user), in
   * seq order, at most `limit`; `nextAfterSeq` is the last one's seq when more match (pass it as
   * afterSeq for the next page), else null. Reads the file from the start.
   */
  async query(q: AuditQuery): Promise<{ entries: AuditEntry[]; nextAfterSeq: number | null }> {
    this.assertOpen();
    if (!Number.isSafeInteger(q.limit) || q.limit < 1) throw new RangeError(`audit query: limit must be a positive integer (${q.limit})`);
    if (q.afterSeq !== undefined && (!Number.isSafeInteger(q.afterSeq) || q.afterSeq < 0)) throw new RangeError(`audit query: afterSeq must be a non-negative integer (${q.afterSeq})`);
    const from = q.from === undefined ? null : parseRfc3339(q.from);
    const to = q.to === undefined ? null : parseRfc3339(q.to);
    if (q.from !== undefined && from === null) throw new RangeError(`audit query: from is not an RFC 3339 time (${q.from})`);
    if (q.to !== undefined && to === null) throw new RangeError(`audit query: to is not an RFC 3339 time (${q.to})`);
    const entries: AuditEntry[] = [];
    let more = false;
    for await (const line of readLines(this.trailPath, this.durableSize)) {
      if (!line.complete) break;
      const parsed = parseEntry(line.text);
      if ('error' in parsed) continue;
      const e = parsed.entry;
      if (q.afterSeq !== undefined && e.seq <= q.afterSeq) continue;
      if (q.user !== undefined && e.actor.user !== q.user) continue;
      if (q.action !== undefined && e.action !== q.action) continue;
      if (q.target !== undefined && e.target !== q.target) continue;
      if (from !== null || to !== null) {
        const at = Date.parse(e.at);
        if ((from !== null && at < from) || (to !== null && at >= to)) continue;
      }
      if (entries.length === q.limit) {
        more = true;
        break;
      }
      entries.push(e);
    }
    entries.sort((a, b) => a.seq - b.seq);
    return { entries, nextAfterSeq: more ? entries[entries.length - 1]!.seq : null };
  }

  /**
   * Walks the whole file and checks it against its own hashes, head.json, every digest, and `heads`
   * (e.g. copied from the journal's `audit head` lines).
   */
  async verify(opts: { heads?: Array<{ seq: number; hash: string }> } = {}): Promise<AuditVerifyResult> {
    this.assertOpen();
    const files = this.readAnchorFiles();
    const extra: AuditProblem[] = files.filter((f) => f.error).map((f) => ({ seq: f.error!.seq, kind: 'bad_head', message: `${f.source}: ${f.error!.message}` }));
    const anchors = files.filter((f) => f.head).map((f) => ({ source: f.source, seq: f.head!.seq, hash: f.head!.hash }));
    (opts.heads ?? []).forEach((h, i) => {
      const source = `given head ${i + 1}`;
      if (Number.isSafeInteger(h?.seq) && h.seq >= 1 && typeof h.hash === 'string' && HEX64.test(h.hash)) anchors.push({ source, seq: h.seq, hash: h.hash });
      else extra.push({ seq: null, kind: 'bad_head', message: `${source}: not a head (seq, hash)` });
    });
    const scan = await this.scan(this.flushing ? this.durableSize : fstatSync(this.fh.fd).size, anchors);
    if (scan.tornBytes) extra.push({ seq: null, kind: 'torn', message: `${scan.tornBytes} bytes after the last complete line (a write cut off mid-line)` });
    // A trail younger than two head periods may not have had its first head yet.
    const due = scan.firstAt !== null && this.now().getTime() - Date.parse(scan.firstAt) > 2 * this.headEveryMs;
    if (scan.entries > 0 && files.length === 0 && due) extra.push({ seq: null, kind: 'no_head', message: 'no head has been published (no head.json, no digest): nothing outside the file vouches for it' });
    const problems = sortProblems([...scan.problems, ...extra]);
    return { ok: problems.length === 0, entries: scan.entries, head: scan.head, problems };
  }

  /**
   * Publishes the last durable entry as a head: head.json, today's digest (the day of that entry), and
   * the `audit head` log line for the journal. A head.json or digest that is not what the daemon wrote
   * or found agreeing with the chain is left alone (it is evidence) and logged once. Null when empty.
   */
  async publishHead(): Promise<AuditHead | null> {
    const d = this.durable;
    if (d.seq === 0) return null;
    const head = this.makeHead(d.seq, d.hash, toUtcString(this.now().getTime()));
    try {
      await this.serial(async () => {
        await this.writeAnchor(this.headPath, 'head.json', `${canonicalJSON(head)}\n`);
        if (d.day) await this.writeDigest(d.day.date, d.day.firstSeq, d.seq, head);
      });
    } finally {
      this.log.info({ auditHead: { seq: head.seq, hash: head.hash, mac: head.mac } }, 'audit head');
    }
    this.lastPublishedSeq = d.seq;
    return head;
  }

  /** Lets queued entries reach the disk, publishes a final head, stops the timer. */
  close(): Promise<void> {
    this.closing ??= (async () => {
      this.closed = true;
      if (this.timer) clearInterval(this.timer);
      while (this.flushing) await this.flushing;
      try {
        await this.publishHead();
      } catch (err) {
        this.log.error({ err }, 'audit trail: the final head could not be written');
      }
      await this.anchorWrites;
      await this.fh.close();
    })();
    return this.closing;
  }

  private async start(): Promise<void> {
    const files = this.readAnchorFiles();
    const withHead = files.filter((f) => f.head);
    const size = (await this.fh.stat()).size;
    const scan = await this.scan(size, withHead.map((f) => ({ source: f.source, seq: f.head!.seq, hash: f.head!.hash })));
    let repaired = false;
    if (scan.tornBytes) {
      try {
        await this.fh.truncate(scan.completeEnd);
        await this.fh.sync();
        repaired = true;
        this.log.warn({ auditTornBytes: scan.tornBytes }, 'audit trail: a torn last line was cut off');
      } catch (err) {
        // Appending after a torn line would glue an entry to it: the trail stays shut, the daemon runs.
        this.broken = err as Error;
        this.log.error({ err, auditTornBytes: scan.tornBytes }, 'audit trail: a torn last line could not be cut off; no entry is accepted until a restart');
      }
    }
    this.durableSize = scan.completeEnd;
    const problems = sortProblems([...scan.problems, ...files.filter((f) => f.error).map((f): AuditProblem => ({ seq: f.error!.seq, kind: 'bad_head', message: `${f.source}: ${f.error!.message}` }))]);
    if (problems.length) {
      this.log.error({ auditProblems: problems.slice(0, 20), auditProblemCount: problems.length }, 'audit trail: damaged (it stays open; verify names the damage)');
    }
    const last = scan.days[scan.days.length - 1];
    // Goes on from the entry with the highest seq, past any line that is not an entry.
    if (scan.lastSeq > 0) this.durable = { seq: scan.lastSeq, hash: scan.head?.hash ?? ZERO_HASH, day: last ? { date: last.date, firstSeq: last.firstSeq } : null };
    this.assigned = { ...this.durable };

    const consistent = new Set(withHead.filter((_, i) => scan.consistent[i]));
    for (const f of consistent) this.known.set(f.path, f.text);
    await this.serial(async () => {
      await this.rekey(withHead, consistent);
      if (problems.length) return;
      for (const day of scan.days.slice(0, -1)) {
        const f = files.find((x) => x.kind === 'digest' && x.source === `digest ${day.date}`);
        if (f && !(f.digest && consistent.has(f) && f.digest.lastSeq < day.lastSeq)) continue;
        await this.writeDigest(day.date, day.firstSeq, day.lastSeq, this.makeHead(day.lastSeq, day.hash, toUtcString(this.now().getTime())));
      }
    }).catch((err: unknown) => this.log.error({ err }, 'audit trail: heads and digests could not be brought up to date'));
    const headFile = withHead.find((f) => f.kind === 'head');
    if (headFile && consistent.has(headFile)) this.lastPublishedSeq = headFile.head!.seq;

    // Neither failing stops the daemon: a later entry or head tries again, and the log has it.
    if (repaired) {
      await this.append({ actor: SYSTEM, action: 'audit.repaired', details: { tornBytes: scan.tornBytes }, outcome: 'ok' })
        .catch((err: unknown) => this.log.error({ err }, 'audit trail: the repair could not be recorded'));
    }
    if (this.durable.seq > 0 && this.durable.seq !== this.lastPublishedSeq) {
      await this.publishHead().catch((err: unknown) => this.log.error({ err }, 'audit trail: a head could not be written'));
    }
    this.timer = setInterval(() => this.tick(), this.headEveryMs);
    this.timer.unref();
  }

  private tick(): void {
    if (this.closed || this.durable.seq === 0 || this.durable.seq === this.lastPublishedSeq) return;
    this.publishHead().catch((err: unknown) => this.log.error({ err }, 'audit trail: a head could not be written'));
  }

  /** Heads and digests MAC'd under an older master key (still in keys.all) re-MAC'd under the current one, same seq, hash and time. */
  private async rekey(files: AnchorFile[], consistent: Set<AnchorFile>): Promise<void> {
    let n = 0;
    for (const f of files) {
      if (f.head!.keyId === this.keyId) continue;
      const head = this.makeHead(f.head!.seq, f.head!.hash, f.head!.at);
      const text = `${canonicalJSON(f.kind === 'head' ? head : { ...f.digest!, head })}\n`;
      await replaceDurably(f.path, text);
      if (consistent.has(f)) this.known.set(f.path, text);
      n++;
    }
    if (n) this.log.info({ auditRekeyed: n, keyId: this.keyId }, 'audit trail: heads and digests re-MACed under the current master key');
  }

  private kick(): void {
    if (this.flushing) return;
    this.flushing = this.flushLoop().finally(() => {
      this.flushing = null;
      if (this.pending.length) this.kick();
    });
  }

  /** One write and one fdatasync per batch of everything queued. */
  private async flushLoop(): Promise<void> {
    while (this.pending.length && !this.broken) {
      const batch = this.pending.splice(0);
      const bytes = Buffer.from(batch.map((p) => p.line).join(''));
      try {
        for (let off = 0; off < bytes.length;) off += (await this.fh.write(bytes, off, bytes.length - off)).bytesWritten;
        await this.fh.datasync();
      } catch (err) {
        await this.undo(batch, err as Error);
        continue;
      }
      this.durableSize += bytes.length;
      const last = batch[batch.length - 1]!;
      this.durable = { seq: last.entry.seq, hash: last.entry.hash, day: last.day };
      for (const p of batch) p.resolve(p.entry);
      for (const p of batch) if (p.closes) this.finaliseDay(p.closes);
    }
    if (this.broken) {
      const err = this.brokenError();
      for (const p of this.pending.splice(0)) p.reject(err);
    }
  }

  /** A failed write: its entries and those chained behind them are refused, and the file is cut back to its last durable entry. */
  private async undo(batch: Pending[], err: Error): Promise<void> {
    const dropped = [...batch, ...this.pending.splice(0)];
    this.assigned = { ...this.durable };
    this.log.error({ err, auditRefused: dropped.length }, 'audit trail: a write failed; its entries are refused');
    try {
      await this.fh.truncate(this.durableSize);
      await this.fh.datasync();
    } catch (e) {
      this.broken = e as Error;
      this.log.error({ err: e }, 'audit trail: a failed write could not be undone; no entry is accepted until a restart');
    }
    // Refused once the file is back at its last durable entry (or known not to be).
    const refusal = new AuditTrailError(`audit entry not written: ${err.message}`, { cause: err });
    for (const p of dropped) p.reject(refusal);
  }

  private brokenError(): AuditTrailError {
    return new AuditTrailError(`the audit trail cannot be written: a failed write could not be undone (${this.broken!.message}); restart the daemon`, { cause: this.broken });
  }

  /** The digest of a day that is over, written in the background (the entries are durable already). */
  private finaliseDay(c: ClosedDay): void {
    const head = this.makeHead(c.lastSeq, c.hash, toUtcString(this.now().getTime()));
    this.serial(() => this.writeDigest(c.date, c.firstSeq, c.lastSeq, head)).catch((err: unknown) => {
      this.log.error({ err, auditDigest: c.date }, 'audit trail: a day\'s digest could not be written');
    });
  }

  /** Runs `fn` after every anchor write queued before it. */
  private serial<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.anchorWrites.then(fn);
    this.anchorWrites = run.catch(() => undefined);
    return run;
  }

  private makeHead(seq: number, hash: string, at: string): AuditHead {
    return { seq, hash, at, keyId: this.keyId, mac: headMac(this.auditKey, seq, hash, at) };
  }

  private async writeDigest(date: string, firstSeq: number, lastSeq: number, head: AuditHead): Promise<boolean> {
    const digest: AuditDigest = { date, firstSeq, lastSeq, count: lastSeq - firstSeq + 1, head };
    return this.writeAnchor(join(this.digestDir, `${date}.json`), `digest ${date}`, `${canonicalJSON(digest)}\n`);
  }

  /** Replaces an anchor file durably unless it holds something the daemon did not write or vouch for. */
  private async writeAnchor(path: string, source: string, text: string): Promise<boolean> {
    const cur = await readFile(path, 'utf8').catch((err: NodeJS.ErrnoException) => {
      if (err.code === 'ENOENT') return null;
      throw err;
    });
    if (cur !== null && cur !== this.known.get(path)) {
      if (!this.refused.has(path)) {
        this.refused.add(path);
        this.log.error({ auditAnchor: source }, 'audit trail: an anchor file disagrees with the trail or was changed by someone else; left as it is (verify reports it)');
      }
      return false;
    }
    await replaceDurably(path, text);
    this.known.set(path, text);
    this.refused.delete(path);
    return true;
  }

  private readAnchorFiles(): AnchorFile[] {
    const files: AnchorFile[] = [];
    const head = readText(this.headPath);
    if (head !== null) {
      const c = checkHead(parseJson(head), this.auditKeys);
      files.push({ path: this.headPath, source: 'head.json', text: head, kind: 'head', ...('error' in c ? { error: { message: c.error, seq: c.seq } } : { head: c.head }) });
    }
    let names: string[] = [];
    try {
      names = readdirSync(this.digestDir).sort();
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
    }
    for (const name of names) {
      const m = DIGEST_FILE.exec(name);
      if (!m) continue;
      const path = join(this.digestDir, name);
      const text = readText(path);
      if (text === null) continue;
      const c = checkDigest(parseJson(text), m[1]!, this.auditKeys);
      files.push({ path, source: `digest ${m[1]}`, text, kind: 'digest', ...('error' in c ? { error: { message: c.error, seq: c.seq } } : { digest: c.digest, head: c.digest.head }) });
    }
    return files;
  }

  /** The first `limit` bytes of the file through the checker, and the UTC days of its entries. */
  private async scan(limit: number, anchors: Anchor[]): Promise<Scan> {
    const checker = new ChainChecker(anchors.map((a) => a.seq));
    const days: ClosedDay[] = [];
    let lineNo = 0;
    let completeEnd = 0;
    let tornBytes = 0;
    let firstAt: string | null = null;
    for await (const line of readLines(this.trailPath, limit)) {
      if (!line.complete) {
        tornBytes = line.bytes;
        break;
      }
      lineNo++;
      completeEnd = line.end;
      const before = checker.head?.seq ?? 0;
      const e = checker.feed(line.text, lineNo);
      const h = checker.head;
      if (!e || !h || h.seq === before) continue;
      firstAt ??= e.at;
      const day = days[days.length - 1];
      const date = dayOf(e.at);
      if (!day || date > day.date) days.push({ date, firstSeq: h.seq, lastSeq: h.seq, hash: h.hash });
      else Object.assign(day, { lastSeq: h.seq, hash: h.hash });
    }
    const { problems, consistent } = checker.finish(anchors);
    return { problems, consistent, entries: checker.entries, head: checker.head, lastSeq: checker.lastSeq, days, completeEnd, tornBytes, firstAt };
  }

  private assertOpen(): void {
    if (this.closed) throw new AuditTrailError('the audit trail is closed');
  }
}

/** The caller's input checked, and copied field by field (nothing else of an actor object gets in). */
function entryBody(input: AuditInput): AuditInput {
  const a = input?.actor;
  if (!a || !(a.user === null || typeof a.user === 'string') || !Array.isArray(a.roles) || !a.roles.every((r) => typeof r === 'string')
    || !VIAS.includes(a.via) || typeof a.from !== 'string') {
    throw new TypeError('audit entry: actor needs user (a string or null), roles (strings), via (api, cli or system) and from');
  }
  if (typeof input.action !== 'string' || input.action === '') throw new TypeError('audit entry: action is missing');
  if (!OUTCOMES.includes(input.outcome)) throw new TypeError(`audit entry: outcome must be one of ${OUTCOMES.join(', ')}`);
  if (input.target !== undefined && typeof input.target !== 'string') throw new TypeError('audit entry: target must be a string');
  if (input.details !== undefined && (input.details === null || typeof input.details !== 'object' || Array.isArray(input.details))) {
    throw new TypeError('audit entry: details must be an object');
  }
  return {
    actor: { user: a.user, roles: [...a.roles], via: a.via, from: a.from },
    action: input.action,
    ...(input.target !== undefined ? { target: input.target } : {}),
    ...(input.details !== undefined ? { details: input.details } : {}),
    outcome: input.outcome,
  };
}

/** Replaces `path` atomically and durably (as store/durableWrite.ts does), without blocking the event loop. */
async function replaceDurably(path: string, text: string): Promise<void> {
  const tmp = `${path}.tmp`;
  const fh = await openFile(tmp, 'w', 0o640);
  try {
    await fh.writeFile(text);
    await fh.sync();
  } finally {
    await fh.close();
  }
  await rename(tmp, path);
  const dir = await openFile(dirname(path), 'r');
  try {
    await dir.sync();
  } finally {
    await dir.close();
  }
}

function readText(path: string): string | null {
  try {
    return readFileSync(path, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw err;
  }
}

function parseJson(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return undefined;
  }
}

/** The lines of the first `limit` bytes of a file; a last piece without its newline comes as complete: false. */
async function* readLines(path: string, limit: number): AsyncGenerator<{ text: string; end: number; complete: boolean; bytes: number }> {
  if (limit <= 0) return;
  const stream = createReadStream(path, { start: 0, end: limit - 1, highWaterMark: 1 << 16 });
  let carry: Buffer[] = [];
  let carryLen = 0;
  let pos = 0;
  try {
    for await (const chunk of stream as AsyncIterable<Buffer>) {
      let start = 0;
      for (let nl = chunk.indexOf(0x0a, start); nl >= 0; nl = chunk.indexOf(0x0a, start)) {
        const piece = chunk.subarray(start, nl);
        const buf = carryLen ? Buffer.concat([...carry, piece]) : piece;
        carry = [];
        carryLen = 0;
        yield { text: buf.toString('utf8'), end: pos + nl + 1, complete: true, bytes: buf.length + 1 };
        start = nl + 1;
      }
      if (start < chunk.length) {
        carry.push(chunk.subarray(start));
        carryLen += chunk.length - start;
      }
      pos += chunk.length;
    }
    if (carryLen) yield { text: Buffer.concat(carry).toString('utf8'), end: pos, complete: false, bytes: carryLen };
  } finally {
    stream.destroy();
  }
}
