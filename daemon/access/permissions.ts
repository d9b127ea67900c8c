/**
 * The one permission matrix (docs/security.md shows it as a table). Every door (API, CLI) reaches the
 * services, and every service method asks `can`/`require` here: no rule lives anywhere else.
 */
export const ROLES = ['manager', 'quality', 'agent', 'technician', 'admin'] as const;
export type Role = (typeof ROLES)[number];

export const PERMISSIONS = [
  /** Search calls and read their metadata. */
  'calls.search',
  /** Hear a call (audio streamed to the browser or the CLI). */
  'calls.listen',
  /** Take a copy out of the box (Ogg Opus or WAV). */
  'calls.export',
  /** Mark a call as training material (or take the mark off): flag `training`. */
  'calls.markTraining',
  /** Destroy a recording at once (an objection by the caller or the adviser). */
  'calls.destroy',
  /** See restricted-presentation caller numbers unmasked (answering a caller's subject request). */
  'calls.subjectRequests',
  /** Status, alarms, recording checks. */
  'system.status',
  'system.verify',
  /** Re-seal the epoch keys under the current master key. */
  'system.keys',
  /** Accounts and roles. */
  'users.manage',
  /** Read the audit trail. */
  'audit.read',
  /** Check the audit trail's chain. */
  'audit.verify',
] as const;
export type Permission = (typeof PERMISSIONS)[number];

/** How far a call permission reaches: every call, or only the calls the actor answered as an adviser. */
export type Scope = 'all' | 'own';

export type Grant = Partial<Record<Permission, Scope>>;

/** `technicianListens` (config access.technicianListens) adds search and listen, to all calls, for technicians. */
export function matrix(technicianListens: boolean): Record<Role, Grant> {
  return {
    manager: { 'calls.search': 'all', 'calls.listen': 'all', 'calls.export': 'all', 'calls.markTraining': 'all', 'calls.destroy': 'all', 'calls.subjectRequests': 'all', 'audit.read': 'all' },
    quality: { 'calls.search': 'all', 'calls.listen': 'all', 'calls.markTraining': 'all' },
    agent: { 'calls.search': 'own', 'calls.listen': 'own' },
    technician: { 'system.status': 'all', 'system.verify': 'all', 'system.keys': 'all', 'audit.verify': 'all', ...(technicianListens ? { 'calls.search': 'all', 'calls.listen': 'all' } : {}) },
    admin: { 'users.manage': 'all', 'audit.read': 'all', 'audit.verify': 'all', 'system.status': 'all' },
  } satisfies Record<Role, Grant>;
}

/** The widest scope any of the roles grants for `perm`, or null when none does. */
export function scopeOf(grants: Record<Role, Grant>, roles: readonly Role[], perm: Permission): Scope | null {
  let best: Scope | null = null;
  for (const r of roles) {
    const s = grants[r]?.[perm];
    if (s === 'all') return 'all';
    if (s === 'own') best = 'own';
  }
  return best;
}

export const isRole = (s: unknown): s is Role => typeof s === 'string' && (ROLES as readonly string[]).includes(s);
