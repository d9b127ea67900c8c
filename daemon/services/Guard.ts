import type { Actor } from '../access/Actor.js';
import type { AuditActor, AuditOutcome, AuditTrail } from '../access/AuditTrail.js';
import { scopeOf, type Grant, type Permission, type Role, type Scope } from '../access/permissions.js';
import { ServiceError } from './errors.js';

export interface Audited {
  target?: string;
  details?: Record<string, unknown>;
  /**
   * A change (not a read): its entry `started` goes on disk before the work, so nothing changes
   * unrecorded even when the trail fails between the work and its outcome.
   */
  mutates?: boolean;
}

/**
 * Every service method runs through `run`: the permission check (from the one matrix), then the work,
 * then the audit entry with its outcome. The answer leaves only after its audit entry is on disk, so a
 * read the trail cannot record gives nothing out; a change also writes `started` before the work, so
 * one the trail cannot record is not done.
 */
export class Guard {
  constructor(private readonly grants: () => Record<Role, Grant>, readonly audit: AuditTrail) {}

  scope(actor: Actor, perm: Permission): Scope | null {
    return scopeOf(this.grants(), actor.roles, perm);
  }

  async run<T>(actor: Actor, action: string, perm: Permission | null, what: Audited, work: (scope: Scope) => Promise<T>): Promise<T> {
    const scope = perm === null ? 'all' : this.scope(actor, perm);
    if (scope === null) {
      await this.record(actor, action, what, 'denied');
      throw new ServiceError('forbidden', `${actor.username}'s roles (${actor.roles.join(', ') || 'none'}) do not allow ${perm}`);
    }
    if (what.mutates) await this.record(actor, action, what, 'started');
    let result: T;
    try {
      result = await work(scope);
    } catch (err) {
      await this.record(actor, action, what, outcomeOf(err));
      throw err;
    }
    try {
      await this.record(actor, action, what, 'ok');
    } catch (err) {
      // Its `started` entry is on record; what is missing is only the outcome.
      if (what.mutates) throw new ServiceError('audit_unavailable', `${action} was done (its start is on record) but the audit trail cannot record its outcome: ${(err as Error).message}`);
      throw err;
    }
    return result;
  }

  /** An entry for something that is not a permission-checked call (a login, a logout). */
  async record(actor: Actor | AuditActor, action: string, what: Audited, outcome: AuditOutcome): Promise<void> {
    try {
      await this.audit.append({ actor: 'username' in actor ? auditActor(actor) : actor, action, ...(what.target !== undefined ? { target: auditedTarget(what.target) } : {}), ...(what.details ? { details: flatDetails(what.details) } : {}), outcome });
    } catch (err) {
      throw new ServiceError('audit_unavailable', `the audit trail cannot record ${action}, so it was not done: ${(err as Error).message}`);
    }
  }
}

export const auditActor = (a: Actor): AuditActor => ({ user: a.username, roles: [...a.roles], via: a.via, from: a.from });

function outcomeOf(err: unknown): AuditOutcome {
  const code = err instanceof ServiceError ? err.code : 'internal';
  if (code === 'not_found') return 'not_found';
  if (code === 'bad_request' || code === 'conflict') return 'bad_request';
  if (code === 'forbidden') return 'denied';
  return 'failed';
}

/** A target as the trail keeps it: an id or a user name, or a marker for anything else a client typed. */
function auditedTarget(t: string): string {
  // The services pass ids, account names, or a marker such as "(no such user)" for what they did not keep.
  return typeof t === 'string' && /^(?:[A-Za-z0-9._@-]{1,128}|\([a-z ]{1,32}\))$/.test(t) ? t : '(not an id)';
}

/**
 * Details as the trail keeps them: flat, small and typed, whatever a door let through. Strings are cut
 * at 200 characters; an object may hold only a few plain values (a keyed hash: {epoch, hash}); anything
 * deeper or larger is left out, so no request can make an entry the trail cannot hold or read back.
 */
export function flatDetails(d: Record<string, unknown>): Record<string, unknown> {
  const plain = (v: unknown): unknown => (typeof v === 'string' ? v.slice(0, 200) : typeof v === 'number' || typeof v === 'boolean' || v === null ? v : undefined);
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(d).slice(0, 20)) {
    const p = plain(v);
    if (p !== undefined) out[k] = p;
    else if (Array.isArray(v) && v.length <= 20 && v.every((x) => plain(x) !== undefined)) out[k] = v.map(plain);
    else if (isSmallRecord(v)) out[k] = Object.fromEntries(Object.entries(v).map(([a, b]) => [a, plain(b)]));
    else if (v !== undefined) out[k] = '(omitted)';
  }
  return out;

  function isSmallRecord(v: unknown): v is Record<string, unknown> {
    return typeof v === 'object' && v !== null && !Array.isArray(v) && Object.keys(v).length <= 4 && Object.values(v).every((x) => plain(x) !== undefined);
  }
}
