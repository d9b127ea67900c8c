/**
 * The audit trail's pure half: canonical JSON, the hash chain, the MACs of heads and digests, and the
 * checker that walks a trail line by line and names what was done to it. No I/O here: AuditTrail.ts
 * reads the files and feeds them in.
 */
import { createHash, createHmac, hkdfSync, timingSafeEqual } from 'node:crypto';
import type { AuditEntry, AuditHead, AuditOutcome, AuditVerifyResult } from './AuditTrail.js';

export type AuditProblem = AuditVerifyResult['problems'][number];

/** `prev` of entry 1. */
export const ZERO_HASH = '0'.repeat(64);

export const OUTCOMES: readonly AuditOutcome[] = ['ok', 'denied', 'failed', 'not_found', 'bad_request', 'started'];
export const VIAS = ['api', 'cli', 'system'] as const;
export const HEX64 = /^[0-9a-f]{64}$/;
const AT = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$/;
const DATE = /^\d{4}-\d{2}-\d{2}$/;

/**
 * JSON with every object's keys sorted (by UTF-16 code units, Array#sort's order), recursively, and no
 * whitespace. Otherwise JSON.stringify's rules: toJSON is called, undefined/functions/symbols are left
 * out of objects and become null in arrays, non-finite numbers become null. Throws TypeError on a BigInt
 * or a cycle. (Sorting by hand, not with a replacer: an object keeps integer-like keys first whatever
 * order they are given in.)
 */
export function canonicalJSON(value: unknown): string {
  const out = encode(value, '', []);
  if (out === undefined) throw new TypeError('canonicalJSON: the value has no JSON form');
  return out;
}

function encode(value: unknown, key: string, stack: object[]): string | undefined {
  if (value !== null && typeof value === 'object' && typeof (value as { toJSON?: unknown }).toJSON === 'function') {
    value = (value as { toJSON: (k: string) => unknown }).toJSON(key);
  }
  if (value instanceof Number || value instanceof String || value instanceof Boolean) value = value.valueOf();
  switch (typeof value) {
    case 'string':
      return JSON.stringify(value);
    case 'number':
      return Number.isFinite(value) ? JSON.stringify(value) : 'null';
    case 'boolean':
      return value ? 'true' : 'false';
    case 'bigint':
      throw new TypeError(`canonicalJSON: a BigInt at "${key}" has no JSON form`);
    case 'undefined':
    case 'function':
    case 'symbol':
      return undefined;
  }
  if (value === null) return 'null';
  const obj = value as object;
  if (stack.includes(obj)) throw new TypeError(`canonicalJSON: a cycle at "${key}"`);
  stack.push(obj);
  try {
    if (Array.isArray(obj)) return `[${obj.map((v, i) => encode(v, String(i), stack) ?? 'null').join(',')}]`;
    const parts: string[] = [];
    for (const k of Object.keys(obj).sort()) {
      const s = encode((obj as Record<string, unknown>)[k], k, stack);
      if (s !== undefined) parts.push(`${JSON.stringify(k)}:${s}`);
    }
    return `{${parts.join(',')}}`;
  } finally {
    stack.pop();
  }
}

/** sha256(prev + '\n' + canonicalJSON(entry without hash)), hex. */
export function chainHash(prev: string, canonicalBody: string): string {
  return createHash('sha256').update(`${prev}\n${canonicalBody}`).digest('hex');
}

/** The entry's own hash recomputed from everything in it but `hash`. */
export function recomputeHash(entry: Record<string, unknown>): string {
  const { hash: _hash, ...body } = entry;
  return chainHash(typeof body.prev === 'string' ? body.prev : '', canonicalJSON(body));
}

/** The audit trail's own key: HKDF-SHA256(master key, salt empty, info "callrec audit trail v1"), 32 bytes. */
export function deriveAuditKey(masterKey: Buffer): Buffer {
  return Buffer.from(hkdfSync('sha256', masterKey, Buffer.alloc(0), 'callrec audit trail v1', 32));
}

/** HMAC-SHA256(auditKey, "callrec audit head\n" + seq + "\n" + hash + "\n" + at), hex. */
export function headMac(auditKey: Buffer, seq: number, hash: string, at: string): string {
  return createHmac('sha256', auditKey).update(`callrec audit head\n${seq}\n${hash}\n${at}`).digest('hex');
}

/** The UTC day an entry belongs to. */
export function dayOf(at: string): string {
  return at.slice(0, 10);
}

const isObject = (v: unknown): v is Record<string, unknown> => v !== null && typeof v === 'object' && !Array.isArray(v);
const isSeq = (v: unknown): v is number => Number.isSafeInteger(v) && (v as number) >= 1;

/** One line of trail.jsonl as an entry, or why it is not one. Extra keys are allowed (the hash covers them). */
export function parseEntry(text: string): { entry: AuditEntry } | { error: string } {
  let v: unknown;
  try {
    v = JSON.parse(text);
  } catch {
    return { error: 'not JSON' };
  }
  if (!isObject(v)) return { error: 'not a JSON object' };
  if (!isSeq(v.seq)) return { error: 'seq is not a positive integer' };
  if (typeof v.at !== 'string' || !AT.test(v.at)) return { error: 'at is not a UTC time with milliseconds' };
  if (typeof v.prev !== 'string' || !HEX64.test(v.prev)) return { error: 'prev is not a sha256' };
  if (typeof v.hash !== 'string' || !HEX64.test(v.hash)) return { error: 'hash is not a sha256' };
  if (typeof v.action !== 'string' || v.action === '') return { error: 'action is missing' };
  if (!OUTCOMES.includes(v.outcome as AuditOutcome)) return { error: 'outcome is not one of the outcomes' };
  const a = v.actor;
  if (!isObject(a) || !(a.user === null || typeof a.user === 'string') || !Array.isArray(a.roles) || !a.roles.every((r) => typeof r === 'string')
    || !VIAS.includes(a.via as (typeof VIAS)[number]) || typeof a.from !== 'string') return { error: 'actor is malformed' };
  if (v.target !== undefined && typeof v.target !== 'string') return { error: 'target is not a string' };
  if (v.details !== undefined && !isObject(v.details)) return { error: 'details is not an object' };
  return { entry: v as unknown as AuditEntry };
}

/** A digest file's content: one UTC day of the trail, and the head at its end. */
export interface AuditDigest {
  date: string;
  firstSeq: number;
  lastSeq: number;
  count: number;
  head: AuditHead;
}

/** A head (head.json, or a digest's) checked: shape, a known key, the MAC. */
export function checkHead(v: unknown, auditKeys: ReadonlyMap<string, Buffer>): { head: AuditHead } | { error: string; seq: number | null } {
  if (!isObject(v)) return { error: 'not a JSON object', seq: null };
  const seq = isSeq(v.seq) ? v.seq : null;
  if (seq === null || typeof v.hash !== 'string' || !HEX64.test(v.hash) || typeof v.at !== 'string' || typeof v.keyId !== 'string'
    || typeof v.mac !== 'string' || !HEX64.test(v.mac)) return { error: 'not a head (seq, hash, at, keyId, mac)', seq };
  const key = auditKeys.get(v.keyId);
  if (!key) return { error: `its MAC is under master key ${v.keyId}, which the daemon was not given`, seq };
  const want = Buffer.from(headMac(key, seq, v.hash, v.at), 'hex');
  if (!timingSafeEqual(want, Buffer.from(v.mac, 'hex'))) return { error: 'its MAC does not match', seq };
  return { head: { seq, hash: v.hash, at: v.at, keyId: v.keyId, mac: v.mac } };
}

/** A digest checked: its fields agree with each other and with its file name, and its head's MAC holds. */
export function checkDigest(v: unknown, fileDate: string, auditKeys: ReadonlyMap<string, Buffer>): { digest: AuditDigest } | { error: string; seq: number | null } {
  if (!isObject(v)) return { error: 'not a JSON object', seq: null };
  const h = checkHead(v.head, auditKeys);
  if ('error' in h) return { error: `its head: ${h.error}`, seq: h.seq };
  const { date, firstSeq, lastSeq, count } = v;
  if (typeof date !== 'string' || !DATE.test(date) || date !== fileDate) return { error: `its date ${String(date)} is not the file's ${fileDate}`, seq: h.head.seq };
  if (!isSeq(firstSeq) || !isSeq(lastSeq) || firstSeq > lastSeq || count !== lastSeq - firstSeq + 1 || lastSeq !== h.head.seq) {
    return { error: 'its firstSeq, lastSeq, count and head do not agree', seq: h.head.seq };
  }
  return { digest: { date, firstSeq, lastSeq, count, head: h.head } };
}

/** Something that vouches for the entry at `seq` having `hash`: head.json, a digest, a head from the journal. */
export interface Anchor {
  source: string;
  seq: number;
  hash: string;
}

const RECENT = 1024;
const short = (h: string): string => `${h.slice(0, 12)}…`;

/**
 * Walks a trail in file order with bounded memory (the entry with the highest seq so far, the hashes of
 * the last 1024 entries, the gaps still open, and the hashes at the seqs anchors name):
 * - `edited`: an entry that does not match its hash; a line that is not an entry; an entry whose `prev`
 *   is not the hash of the entry before it (one of the two was rewritten); an anchor whose hash is not
 *   the entry's at its seq;
 * - `removed`: seqs missing from the file (gaps that no later line fills);
 * - `reordered`: an entry whose seq is not above every seq before it (moved or duplicated), or whose
 *   `prev` is the hash of an entry other than the one before it;
 * - `cut_tail`: an anchor names a seq beyond the file's last.
 */
export class ChainChecker {
  /** Lines that parsed as entries. */
  entries = 0;
  /** The entry with the highest seq (where the chain goes on from). */
  head: { seq: number; hash: string } | null = null;
  private maxSeq = 0;

  /** The highest seq taken so far (a line that is not an entry takes the next one): where appending goes on. */
  get lastSeq(): number {
    return this.maxSeq;
  }
  private hashOfMax: string | null = ZERO_HASH;
  private readonly missing: Array<[number, number]> = [];
  private readonly recent = new Map<string, number>();
  private readonly unresolved = new Map<string, { problem: AuditProblem; seq: number }>();
  private readonly problems: AuditProblem[] = [];
  private readonly wanted = new Map<number, string | null>();

  /** `anchorSeqs`: the seqs whose hashes `finish` will be asked about. */
  constructor(anchorSeqs: Iterable<number> = []) {
    for (const s of anchorSeqs) this.wanted.set(s, null);
  }

  /** One complete line (without its newline), `lineNo` counting from 1. Returns the entry, or null for a bad line. */
  feed(text: string, lineNo: number): AuditEntry | null {
    const parsed = parseEntry(text);
    if ('error' in parsed) {
      const seq = this.maxSeq + 1;
      this.problem('edited', seq, `line ${lineNo} is not an audit entry (${parsed.error}); taken as entry ${seq}`);
      this.maxSeq = seq;
      this.hashOfMax = null;
      return null;
    }
    const e = parsed.entry;
    this.entries++;
    this.resolve(e);
    let recomputed: string | null;
    try {
      recomputed = recomputeHash(e as unknown as Record<string, unknown>);
    } catch {
      recomputed = null; // a line this code cannot re-encode (say, nested past the stack): not one it wrote
    }
    if (recomputed !== e.hash) {
      this.problem('edited', e.seq, `entry ${e.seq} (line ${lineNo}) does not match its hash: it was changed after it was written`);
      if (e.seq !== this.maxSeq + 1) {
        // Its seq may be what was changed: taken as the next one, in place.
        this.advance(this.maxSeq + 1, e.hash);
        return e;
      }
    }
    if (e.seq <= this.maxSeq) {
      const filled = this.fill(e.seq);
      this.problem('reordered', e.seq, filled
        ? `entry ${e.seq} (line ${lineNo}) comes after entry ${this.maxSeq}`
        : `entry ${e.seq} (line ${lineNo}) appears again after entry ${this.maxSeq}`);
      this.remember(e.seq, e.hash);
      return e;
    }
    if (e.seq > this.maxSeq + 1) {
      this.missing.push([this.maxSeq + 1, e.seq - 1]);
    } else if (this.hashOfMax !== null && e.prev !== this.hashOfMax) {
      const other = this.recent.get(e.prev);
      if (other !== undefined) {
        this.problem('reordered', e.seq, `entry ${e.seq} (line ${lineNo}) links to entry ${other}, not to entry ${e.seq - 1}`);
      } else {
        const p = e.seq === 1
          ? this.problem('edited', 1, `entry 1 (line ${lineNo}) does not start the chain (its prev is not ${short(ZERO_HASH)}): it was rewritten`)
          : this.problem('edited', e.seq - 1, `entry ${e.seq} (line ${lineNo}) does not link to entry ${e.seq - 1}'s hash: one of them was rewritten`);
        this.unresolved.set(e.prev, { problem: p, seq: e.seq });
      }
    }
    this.advance(e.seq, e.hash);
    return e;
  }

  /** The problems, anchors checked against the chain; `consistent[i]` tells whether anchor i agrees with it. */
  finish(anchors: readonly Anchor[]): { problems: AuditProblem[]; consistent: boolean[] } {
    const problems = [...this.problems];
    for (const [a, b] of this.missing) {
      problems.push({ seq: a, kind: 'removed', message: a === b ? `entry ${a} is missing` : `entries ${a}-${b} are missing` });
    }
    const beyond = anchors.filter((a) => a.seq > this.maxSeq);
    if (beyond.length) {
      const top = Math.max(...beyond.map((a) => a.seq));
      const sources = [...new Set(beyond.map((a) => a.source))].join(', ');
      problems.push({
        seq: this.maxSeq + 1,
        kind: 'cut_tail',
        message: `the trail ends at entry ${this.maxSeq} but ${sources} vouch${beyond.length === 1 ? 'es' : ''} for entry ${top}: entries ${this.maxSeq + 1}-${top} were cut off`,
      });
    }
    const consistent = anchors.map((a) => {
      if (a.seq > this.maxSeq) return false;
      const have = this.wanted.get(a.seq);
      if (typeof have !== 'string') return false; // missing or an unreadable line: reported above
      if (have === a.hash) return true;
      problems.push({ seq: a.seq, kind: 'edited', message: `${a.source} says entry ${a.seq} has hash ${short(a.hash)}, the trail's entry ${a.seq} has ${short(have)}` });
      return false;
    });
    return { problems: sortProblems(problems), consistent };
  }

  private problem(kind: AuditProblem['kind'], seq: number | null, message: string): AuditProblem {
    const p: AuditProblem = { seq, kind, message };
    this.problems.push(p);
    return p;
  }

  private advance(seq: number, hash: string): void {
    this.maxSeq = seq;
    this.hashOfMax = hash;
    this.head = { seq, hash };
    this.remember(seq, hash);
  }

  private remember(seq: number, hash: string): void {
    if (this.wanted.has(seq) && this.wanted.get(seq) === null) this.wanted.set(seq, hash);
    this.recent.set(hash, seq);
    if (this.recent.size > RECENT) this.recent.delete(this.recent.keys().next().value as string);
  }

  /** A later entry that an earlier one linked to: that link was a move, not an edit. */
  private resolve(e: AuditEntry): void {
    const u = this.unresolved.get(e.hash);
    if (!u) return;
    this.unresolved.delete(e.hash);
    Object.assign(u.problem, { kind: 'reordered', seq: u.seq, message: `entry ${u.seq} links to entry ${e.seq}, which comes after it` });
  }

  private fill(seq: number): boolean {
    const i = this.missing.findIndex(([a, b]) => a <= seq && seq <= b);
    if (i < 0) return false;
    const [a, b] = this.missing[i]!;
    const rest: Array<[number, number]> = [];
    if (a < seq) rest.push([a, seq - 1]);
    if (seq < b) rest.push([seq + 1, b]);
    this.missing.splice(i, 1, ...rest);
    return true;
  }
}

/** By seq, problems without one last; stable. */
export function sortProblems(problems: AuditProblem[]): AuditProblem[] {
  return problems
    .map((p, i) => ({ p, i }))
    .sort((x, y) => (x.p.seq ?? Infinity) - (y.p.seq ?? Infinity) || x.i - y.i)
    .map((x) => x.p);
}
