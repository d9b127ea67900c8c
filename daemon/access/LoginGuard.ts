/**
 * Slows and stops password guessing, in memory (a restart forgets it; so does an attacker's patience):
 * - per account: `failures` wrong passwords in a row lock it for `lockMs` (counted for unknown names too,
 *   so a lock says nothing about whether the name exists);
 * - per source address: after 3 failures, each further attempt must wait 2^(n-3) s (at most 60 s) after
 *   the last failure, or it is refused unchecked with a Retry-After; a success does not wipe the
 *   address's count (else one's own good login would reset the back-off between guesses at others);
 * - one check in flight per account, and per address (4 while the address has no failures): a password
 *   check takes ~0.1 s, and parallel attempts must not all pass the gate before the first one fails.
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

export type Refusal = { reason: 'account_locked' | 'too_many_attempts'; retryAfterS: number };

/** An attempt let through the gate: say how it ended (true: the right password). Returns whether it locked the account. */
export type Attempt = { end(success: boolean): boolean };

export class LoginGuard {
  private readonly accounts = new Map<string, Count>();
  private readonly sources = new Map<string, Count>();
  private readonly accountsInFlight = new Set<string>();
  private readonly sourcesInFlight = new Map<string, number>();

  constructor(private readonly limits: () => LoginLimits, private readonly mono: () => number = () => performance.now()) {}

  /** Before checking a password: an attempt to end once it is checked, or why not and for how long. */
  begin(username: string, from: string): Attempt | Refusal {
    const held = this.check(username, from);
    if (held) return held;
    const srcBusy = this.sourcesInFlight.get(from) ?? 0;
    if (this.accountsInFlight.has(username) || srcBusy >= ((this.sources.get(from)?.n ?? 0) > 0 ? 1 : 4)) return { reason: 'too_many_attempts', retryAfterS: 1 };
    this.accountsInFlight.add(username);
    this.sourcesInFlight.set(from, srcBusy + 1);
    let ended = false;
    return {
      end: (success) => {
        if (ended) return false;
        ended = true;
        this.accountsInFlight.delete(username);
        const left = (this.sourcesInFlight.get(from) ?? 1) - 1;
        if (left > 0) this.sourcesInFlight.set(from, left);
        else this.sourcesInFlight.delete(from);
        if (success) {
          this.succeeded(username);
          return false;
        }
        return this.failed(username, from);
      },
    };
  }

  /** Whether the account is locked or the address must wait: null to go on. */
  check(username: string, from: string): Refusal | null {
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

  /** The right password: the account's count starts again (the address's does not). */
  succeeded(username: string): void {
    this.accounts.delete(username);
  }

  /** Forgets an address's failures (an administrator's tooling, and tests that must not wait a minute). */
  forgetAddress(from: string): void {
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
