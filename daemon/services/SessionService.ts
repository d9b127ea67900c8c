import type { Actor } from '../access/Actor.js';
import type { AuditActor } from '../access/AuditTrail.js';
import type { LoginGuard } from '../access/LoginGuard.js';
import { dummyHash, verifyPassword } from '../access/passwords.js';
import type { Session, Sessions } from '../access/Sessions.js';
import { publicUser, type PublicUser, type User } from '../access/User.js';
import type { UserStore } from '../access/UserStore.js';
import { ServiceError } from './errors.js';
import type { Guard } from './Guard.js';

export interface LoginResult {
  token: string;
  csrfToken: string;
  expiresAt: string;
  user: PublicUser;
}

/** Logging in and out, and turning a presented token into an Actor (for both doors). */
export class SessionService {
  constructor(private readonly users: UserStore, private readonly sessions: Sessions, private readonly loginGuard: LoginGuard, private readonly guard: Guard) {}

  async login(username: unknown, password: unknown, via: 'api' | 'cli', from: string): Promise<LoginResult> {
    const name = typeof username === 'string' ? username.trim().toLowerCase().slice(0, 64) : '';
    const anon: AuditActor = { user: name || null, roles: [], via, from };
    if (!name || typeof password !== 'string' || password.length === 0 || password.length > 1024) {
      await this.guard.record({ ...anon, user: null }, 'session.login', {}, 'bad_request');
      throw new ServiceError('bad_request', 'a login needs a user name and a password');
    }
    const attempt = this.loginGuard.begin(name, from);
    if ('reason' in attempt) {
      const known = (await this.users.get(name)) !== null;
      await this.guard.record(known ? anon : { ...anon, user: null }, 'session.login', { details: { refused: attempt.reason, ...(known ? {} : { unknownUser: true }) } }, 'denied');
      const msg = attempt.reason === 'account_locked' ? `too many wrong passwords for this account: try again in ${attempt.retryAfterS} s, or ask an administrator` : `too many failed logins from ${from}: wait ${attempt.retryAfterS} s`;
      throw new ServiceError(attempt.reason, msg, attempt.retryAfterS);
    }
    let user: User | null = null;
    let good = false;
    let locked = false;
    try {
      user = await this.users.get(name);
      // The same scrypt work whether or not the name exists: timing does not tell.
      good = await verifyPassword(password, user?.passwordHash ?? (await dummyHash()));
    } finally {
      locked = attempt.end(Boolean(user && good && !user.disabled));
    }
    if (!user || !good || user.disabled) {
      // A name no account has is not kept: people type passwords or numbers into the name field.
      const who: AuditActor = user ? anon : { ...anon, user: null };
      await this.guard.record(who, 'session.login', { details: { ...(user ? {} : { unknownUser: true }), ...(user?.disabled && good ? { disabled: true } : {}), ...(locked ? { locked: true } : {}) } }, 'denied');
      throw new ServiceError('unauthenticated', 'wrong user name or password (or the account is disabled)');
    }
    const { token, session } = this.sessions.create(user.username, via);
    await this.guard.record(this.actorOf(session, user, via, from), 'session.login', {}, 'ok');
    return { token, csrfToken: session.csrfToken, expiresAt: this.sessions.expiresAt(session), user: publicUser(user) };
  }

  /** The Actor behind a token, or an `unauthenticated` error (expired, logged out, disabled account). */
  async resolve(token: string | undefined, via: 'api' | 'cli', from: string): Promise<{ actor: Actor; session: Session }> {
    const session = token ? this.sessions.touch(token) : null;
    if (!session) throw new ServiceError('unauthenticated', 'not logged in (or the session expired): log in first');
    const user = await this.users.get(session.username);
    if (!user || user.disabled) {
      this.sessions.end(token!);
      throw new ServiceError('unauthenticated', 'not logged in (the account is disabled)');
    }
    return { actor: this.actorOf(session, user, via, from), session };
  }

  async logout(actor: Actor, token: string): Promise<void> {
    this.sessions.end(token);
    await this.guard.record(actor, 'session.logout', {}, 'ok');
  }

  async whoami(actor: Actor, session: Session): Promise<{ user: PublicUser; csrfToken: string; expiresAt: string }> {
    const user = await this.users.get(actor.username);
    if (!user) throw new ServiceError('unauthenticated', 'not logged in');
    return { user: publicUser(user), csrfToken: session.csrfToken, expiresAt: this.sessions.expiresAt(session) };
  }

  private actorOf(session: Session, user: User, via: 'api' | 'cli', from: string): Actor {
    return { userId: user.id, username: user.username, roles: [...user.roles], agentId: user.agentId, via, from, sessionId: session.id.slice(0, 16) };
  }
}
