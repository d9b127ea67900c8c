import type { Actor } from '../access/Actor.js';
import type { AuditActor } from '../access/AuditTrail.js';
import type { LoginGuard } from '../access/LoginGuard.js';
import { hashPassword, passwordProblem, verifyPassword } from '../access/passwords.js';
import { isRole, type Role } from '../access/permissions.js';
import type { Sessions } from '../access/Sessions.js';
import { publicUser, USERNAME, type PublicUser, type User } from '../access/User.js';
import type { UserStore } from '../access/UserStore.js';
import { ServiceError } from './errors.js';
import type { Guard } from './Guard.js';

export interface NewUser {
  username: string;
  displayName?: string;
  roles: string[];
  agentId?: string | null;
  password: string;
}

export interface UserChange {
  displayName?: string;
  roles?: string[];
  agentId?: string | null;
  disabled?: boolean;
  /** Lifts a lockout after too many wrong passwords. */
  unlock?: boolean;
}

const ADMIN_MEANWHILE = 'an administrator was added meanwhile';
const AGENT_ID = /^[A-Za-z0-9._@-]{1,128}$/;

/** Accounts and roles (the admin role's work), and each person's own password. */
export class UserService {
  constructor(private readonly users: UserStore, private readonly sessions: Sessions, private readonly loginGuard: LoginGuard, private readonly guard: Guard) {}

  async list(actor: Actor): Promise<PublicUser[]> {
    return this.guard.run(actor, 'users.list', 'users.manage', {}, async () => (await this.users.all()).map(publicUser));
  }

  async add(actor: Actor, u: NewUser): Promise<PublicUser> {
    return this.guard.run(actor, 'users.add', 'users.manage', { mutates: true, target: String(u.username), details: { roles: u.roles } }, () => this.create(u));
  }

  /**
   * The first administrator, made on the box through the local socket with no session: only for root or
   * the service group (the control server checks the peer's credentials) and only while no enabled
   * administrator exists.
   */
  async bootstrapAdmin(peer: AuditActor, u: NewUser): Promise<PublicUser> {
    const noAdmin = (all: User[]): boolean => !all.some((x) => x.roles.includes('admin') && !x.disabled);
    const refuse = async (): Promise<never> => {
      await this.guard.record(peer, 'users.bootstrap', { target: String(u.username) }, 'denied');
      throw new ServiceError('unauthenticated', 'an administrator already exists: log in as one (callrec login) to add users');
    };
    if (!noAdmin(await this.users.all())) return refuse();
    if (!u.roles.includes('admin')) throw new ServiceError('bad_request', 'without a session only the first administrator can be added: --role admin');
    await this.guard.record(peer, 'users.bootstrap', { target: String(u.username), details: { roles: u.roles } }, 'started');
    // Checked again in the same step as the write: two racing first administrators never both get in.
    let user: PublicUser;
    try {
      user = await this.create(u, noAdmin);
    } catch (err) {
      if (err instanceof ServiceError && err.message === ADMIN_MEANWHILE) return refuse();
      await this.guard.record(peer, 'users.bootstrap', { target: String(u.username) }, err instanceof ServiceError && err.code === 'bad_request' ? 'bad_request' : 'failed');
      throw err;
    }
    await this.guard.record(peer, 'users.bootstrap', { target: user.username, details: { roles: user.roles } }, 'ok');
    return user;
  }

  /**
   * The demo's manager (`npm start`): made, or given a fresh password, by the daemon's own start-up
   * code; never reachable from either door.
   */
  async provision(system: AuditActor, u: NewUser): Promise<PublicUser> {
    const existing = await this.users.get(u.username);
    let user: PublicUser;
    if (existing) {
      await this.setPassword(u.username, u.password);
      const rs = roles(u.roles);
      user = publicUser((await this.users.update(u.username, (x) => ({ ...x, roles: rs, disabled: false })))!);
      this.sessions.endAllOf(u.username);
    } else user = await this.create(u);
    await this.guard.record(system, 'users.provision', { target: u.username, details: { roles: user.roles } }, 'ok');
    return user;
  }

  async update(actor: Actor, username: string, c: UserChange): Promise<PublicUser> {
    return this.guard.run(actor, 'users.update', 'users.manage', { mutates: true, target: await this.knownName(username), details: changeForAudit(c) }, async () => {
      if (username === actor.username && (c.roles !== undefined || c.agentId !== undefined || c.disabled === true)) {
        // Separation of duties: an administrator cannot give themself call access (or lock themself out).
        throw new ServiceError('conflict', 'an administrator cannot change their own roles, adviser id or enabled state: another administrator must');
      }
      const next = await this.users.update(username, (u) => {
        const n: User = { ...u, updatedAt: new Date().toISOString() };
        if (c.displayName !== undefined) n.displayName = displayName(c.displayName);
        if (c.roles !== undefined) n.roles = roles(c.roles);
        if (c.agentId !== undefined) n.agentId = agentId(c.agentId);
        if (c.disabled !== undefined) n.disabled = c.disabled;
        if (n.roles.includes('agent') && !n.agentId) throw new ServiceError('bad_request', 'an agent account needs its PBX adviser id (agentId)');
        return n;
      });
      if (!next) throw new ServiceError('not_found', `no user ${JSON.stringify(String(username).slice(0, 64))}`);
      if (c.unlock) this.loginGuard.unlock(username);
      // Fewer rights, or none: sessions already open must not keep the old ones.
      if (c.disabled || c.roles !== undefined || c.agentId !== undefined) this.sessions.endAllOf(username);
      return publicUser(next);
    });
  }

  /** An administrator sets a new password (a forgotten one); the user's sessions end. */
  async resetPassword(actor: Actor, username: string, password: string): Promise<void> {
    return this.guard.run(actor, 'users.password_reset', 'users.manage', { mutates: true, target: await this.knownName(username) }, async () => {
      await this.existing(username);
      await this.setPassword(username, password);
      this.sessions.endAllOf(username);
    });
  }

  /**
   * Anyone changes their own password, proving the current one (wrong guesses count like failed logins,
   * so a stolen session cannot guess it freely); their other sessions end.
   */
  async changeOwnPassword(actor: Actor, current: string, password: string): Promise<void> {
    return this.guard.run(actor, 'users.password_change', null, { mutates: true, target: actor.username }, async () => {
      const attempt = this.loginGuard.begin(actor.username, actor.from);
      if ('reason' in attempt) throw new ServiceError(attempt.reason, `too many wrong passwords: wait ${attempt.retryAfterS} s`, attempt.retryAfterS);
      let good = false;
      try {
        const u = await this.existing(actor.username);
        good = typeof current === 'string' && (await verifyPassword(current, u.passwordHash));
      } finally {
        attempt.end(good);
      }
      if (!good) throw new ServiceError('forbidden', 'the current password is wrong');
      await this.setPassword(actor.username, password);
      this.sessions.endAllOf(actor.username, actor.sessionId);
    });
  }

  private async create(u: NewUser, allowed?: (all: User[]) => boolean): Promise<PublicUser> {
    if (typeof u.username !== 'string' || !USERNAME.test(u.username)) throw new ServiceError('bad_request', 'username: 2-64 characters, lower-case letters, digits, . _ -, starting with a letter');
    const rs = roles(u.roles);
    const aid = agentId(u.agentId ?? null);
    if (rs.includes('agent') && !aid) throw new ServiceError('bad_request', 'an agent account needs its PBX adviser id (agentId)');
    const problem = typeof u.password === 'string' ? passwordProblem(u.password, u.username) : 'a password is required';
    if (problem) throw new ServiceError('bad_request', problem);
    const now = new Date().toISOString();
    const made = await this.users.add({ username: u.username, displayName: displayName(u.displayName ?? u.username), roles: rs, agentId: aid, disabled: false, createdAt: now, updatedAt: now, passwordChangedAt: now, passwordHash: await hashPassword(u.password) }, allowed);
    if (!made && allowed && !(await this.users.get(u.username))) throw new ServiceError('conflict', ADMIN_MEANWHILE);
    if (!made) throw new ServiceError('conflict', `user ${u.username} exists (accounts are disabled, never deleted)`);
    return publicUser(made);
  }

  /** Hashes first (slow), then writes only the password fields of the record as it is now (no lost update). */
  private async setPassword(username: string, password: string): Promise<void> {
    const problem = typeof password === 'string' ? passwordProblem(password, username) : 'a password is required';
    if (problem) throw new ServiceError('bad_request', problem);
    const passwordHash = await hashPassword(password);
    const now = new Date().toISOString();
    const done = await this.users.update(username, (u) => ({ ...u, passwordHash, passwordChangedAt: now, updatedAt: now }));
    if (!done) throw new ServiceError('not_found', `no user ${username}`);
  }

  /** An account's name as the trail keeps it: only a name that is an account (not whatever was typed, a password say). */
  async knownName(username: string): Promise<string> {
    return typeof username === 'string' && username.length > 0 && username.length <= 64 && (await this.users.get(username)) ? username : '(no such user)';
  }

  private async existing(username: string): Promise<User> {
    const u = typeof username === 'string' ? await this.users.get(username) : null;
    if (!u) throw new ServiceError('not_found', `no user ${JSON.stringify(String(username).slice(0, 64))}`);
    return u;
  }
}

function roles(rs: unknown): Role[] {
  if (!Array.isArray(rs) || rs.length === 0 || !rs.every(isRole)) throw new ServiceError('bad_request', 'roles: one or more of manager, quality, agent, technician, admin');
  return [...new Set(rs)];
}

function agentId(a: unknown): string | null {
  if (a === null || a === undefined || a === '') return null;
  if (typeof a !== 'string' || !AGENT_ID.test(a)) throw new ServiceError('bad_request', 'agentId: the adviser id as the PBX sends it (1-128 of A-Z a-z 0-9 . _ @ -)');
  return a;
}

function displayName(s: unknown): string {
  if (typeof s !== 'string' || s.trim().length === 0 || s.length > 128) throw new ServiceError('bad_request', 'displayName: 1-128 characters');
  return s.trim();
}

/** A change as the audit keeps it: what changed, but an adviser id or a name only as "changed" (they are personal). */
function changeForAudit(c: UserChange): Record<string, unknown> {
  const { agentId, displayName: name, ...rest } = c;
  return { ...rest, ...(agentId !== undefined ? { agentIdChanged: true } : {}), ...(name !== undefined ? { displayNameChanged: true } : {}) };
}
