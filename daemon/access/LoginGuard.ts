/**
 * Slows and stops password guessing, in memory (a restart forgets it; so does an attacker's patience):
 * - per account: `failures` wrong passwords in a row lock it for `lockMs` (counted for unknown names too,
 *   so a lock says nothing about whether the name exists);
 * - per source address: after 3 failures, each further attempt must wait 2^(n-3) s (at most 60 s) after
 *   the last failure, or it is refused unchecked with a Retry-After.
 */
export interface LoginLimits {
  failures: number;
  lockMs: number;
}

interface Count {
  n: number;
  lastMono: number;
  lockedUntilMono?: number;
}

export class LoginGuard {
  private readonly accounts = new Map<string, Count>();
  private readonly sources = new Map<string, Count>();

  constructor(private readonly limits: () => LoginLimits, private readonly mono: () => number = () => performance.now()) {}

  /** Before checking a password: null to go on, or why not and for how long. */
  check(username: string, from: string): { reason: 'account_locked' | 'too_many_attempts'; retryAfterS: number } | null {
    const now = this.mono();
    const acc = this.accounts.get(username);
    if (acc?.lockedUntilMono !== undefined && acc.lockedUntilMono > now) return { reason: 'account_locked', retryAfterS: Math.ceil((acc.lockedUntilMono - now) / 1000) };
    const src = this.sources.get(from);
    if (src && src.n >= 3) {
      const wait = Math.min(2 ** (src.n - 3), 60) * 1000;
      if (now - src.lastMono < wait) return { reason: 'too_many_attempts', retryAfterS: Math.ceil((wait - (now - src.lastMono)) / 1000) };
    }
    return null;
  }

  /** A wrong password (or unknown name): true when this failure locked the account. */
  failed(username: string, from: string): boolean {
    const now = this.mono();
    const { failures, lockMs } = this.limits();
    const acc = this.bump(this.accounts, username, now, lockMs);
    this.bump(this.sources, from, now, 15 * 60_000);
    if (acc.n >= failures) {
      acc.lockedUntilMono = now + lockMs;
      acc.n = 0;
      return true;
    }
    return false;
  }

  succeeded(username: string, from: string): void {
    this.accounts.delete(username);
    this.sources.delete(from);
  }

  /** An administrator's unlock. */
  unlock(username: string): void {
    this.accounts.delete(username);
  }

  private bump(map: Map<string, Count>, key: string, now: number, forgetMs: number): Count {
    let c = map.get(key);
    if (!c || now - c.lastMono > forgetMs) c = { n: 0, lastMono: now };
    c.n++;
    c.lastMono = now;
    map.set(key, c);
    if (map.size > 10_000) for (const [k, v] of map) if (now - v.lastMono > forgetMs) map.delete(k);
    return c;
  }
}
