import type { Actor } from '../access/Actor.js';
import type { AuditEntry, AuditQuery, AuditTrail, AuditVerifyResult } from '../access/AuditTrail.js';
import { ServiceError } from './errors.js';
import type { Guard } from './Guard.js';
import { recordingTarget, toUtcBound } from './CallService.js';

/** The trail's query as people send it: times in any RFC 3339 form or a date, and a default limit. */
export type AuditSearchParams = Omit<AuditQuery, 'limit'> & { limit?: number };

/** Reading and checking the audit trail (itself audited: who looked at whom is on record too). */
export class AuditService {
  constructor(
    private readonly trail: AuditTrail,
    private readonly guard: Guard,
    /** A name if it is an account's, else a marker (UserService.knownName). */
    private readonly knownName: (name: string) => Promise<string>,
  ) {}

  async search(actor: Actor, p: AuditSearchParams): Promise<{ entries: AuditEntry[]; nextAfterSeq: number | null }> {
    return this.guard.run(actor, 'audit.search', 'audit.read', { details: await this.filtersForAudit(p) }, async () => {
      const limit = p.limit ?? 100;
      if (!Number.isInteger(limit) || limit < 1 || limit > 1000) throw new ServiceError('bad_request', 'limit: an integer 1-1000');
      return this.trail.query({
        ...(p.from !== undefined ? { from: new Date(toUtcBound(p.from, 'from')).toISOString() } : {}),
        ...(p.to !== undefined ? { to: new Date(toUtcBound(p.to, 'to')).toISOString() } : {}),
        ...(p.user !== undefined ? { user: p.user } : {}),
        ...(p.action !== undefined ? { action: p.action } : {}),
        ...(p.target !== undefined ? { target: p.target } : {}),
        ...(p.afterSeq !== undefined ? { afterSeq: p.afterSeq } : {}),
        limit,
      });
    });
  }

  /**
   * The filters as the trail keeps them: times, account names, actions and recording ids only; text
   * that is none of these (a caller's number, a password typed in the wrong field) is not kept.
   */
  private async filtersForAudit(p: AuditSearchParams): Promise<Record<string, unknown>> {
    const time = (v: string): string => {
      try {
        return toUtcBound(v, 'time');
      } catch {
        return '(not a time)';
      }
    };
    const target = async (t: string): Promise<string> => (recordingTarget(t) === t ? t : (await this.knownName(t)) === t ? t : '(not an id)');
    return {
      ...(p.from !== undefined ? { from: time(p.from) } : {}),
      ...(p.to !== undefined ? { to: time(p.to) } : {}),
      ...(p.user !== undefined ? { user: await this.knownName(p.user) } : {}),
      ...(p.action !== undefined ? { action: /^[a-z_]{1,32}(\.[a-z_]{1,32}){0,3}$/.test(p.action) ? p.action : '(not an action)' } : {}),
      ...(p.target !== undefined ? { target: await target(p.target) } : {}),
      ...(p.afterSeq !== undefined ? { afterSeq: p.afterSeq } : {}),
      ...(p.limit !== undefined ? { limit: p.limit } : {}),
    };
  }

  /** `callrec audit verify`: the whole chain against every published head (and any the caller copied from the journal). */
  async verify(actor: Actor, heads: Array<{ seq: number; hash: string }> = []): Promise<AuditVerifyResult> {
    return this.guard.run(actor, 'audit.verify', 'audit.verify', { details: { heads: heads.length } }, () => this.trail.verify({ heads }));
  }
}
