import { createHash, randomBytes } from 'node:crypto';

export interface Session {
  /** sha256 of the token, hex: what is kept, and (its first 16 characters) what the audit names. */
  id: string;
  username: string;
  csrfToken: string;
  via: 'api' | 'cli';
  createdMono: number;
  lastSeenMono: number;
  createdAt: string;
}

export const tokenId = (token: string): string => createHash('sha256').update(token).digest('hex');

/**
 * Sessions: an opaque 256-bit random token goes to the client, only its SHA-256 is kept (in memory: a
 * restart ends every session). Idle timeout and absolute lifetime are measured on the monotonic clock.
 */
export class Sessions {
  private readonly byId = new Map<string, Session>();

  constructor(private readonly limits: () => { idleMs: number; maxMs: number }, private readonly mono: () => number = () => performance.now()) {}

  create(username: string, via: 'api' | 'cli'): { token: string; session: Session } {
    this.sweep();
    const token = randomBytes(32).toString('base64url');
    const now = this.mono();
    const session: Session = { id: tokenId(token), username, csrfToken: randomBytes(24).toString('base64url'), via, createdMono: now, lastSeenMono: now, createdAt: new Date().toISOString() };
    this.byId.set(session.id, session);
    return { token, session };
  }

  /** The live session for a token (its idle clock restarted), or null. */
  touch(token: string): Session | null {
    const s = this.byId.get(tokenId(token));
    if (!s) return null;
    const now = this.mono();
    const { idleMs, maxMs } = this.limits();
    if (now - s.lastSeenMono > idleMs || now - s.createdMono > maxMs) {
      this.byId.delete(s.id);
      return null;
    }
    s.lastSeenMono = now;
    return s;
  }

  /** When the session ends at the latest (idle or absolute), as a UTC time. */
  expiresAt(s: Session): string {
    const { idleMs, maxMs } = this.limits();
    const left = Math.min(s.lastSeenMono + idleMs, s.createdMono + maxMs) - this.mono();
    return new Date(Date.now() + left).toISOString();
  }

  end(token: string): boolean {
    return this.byId.delete(tokenId(token));
  }

  /** Ends every session of a user (disabled, roles changed, password changed), but the one whose id starts with `exceptId`. */
  endAllOf(username: string, exceptId?: string): number {
    let n = 0;
    for (const [id, s] of this.byId) if (s.username === username && !(exceptId && id.startsWith(exceptId))) n += Number(this.byId.delete(id));
    return n;
  }

  private sweep(): void {
    const now = this.mono();
    const { idleMs, maxMs } = this.limits();
    for (const [id, s] of this.byId) if (now - s.lastSeenMono > idleMs || now - s.createdMono > maxMs) this.byId.delete(id);
  }
}
