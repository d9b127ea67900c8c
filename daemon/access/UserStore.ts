import { randomUUID } from 'node:crypto';
import { chmodSync } from 'node:fs';
import { Level } from 'level';
import type { User } from './User.js';

/**
 * The accounts, in their own LevelDB under `<dataDir>/access` (apart from the recording index, which
 * `callrec db rebuild` may replace). Keyed by user name; user names never change.
 */
export class UserStore {
  private readonly users;
  private queue: Promise<unknown> = Promise.resolve();

  private constructor(private readonly db: Level<string, string>) {
    this.users = db.sublevel<string, User>('users', { valueEncoding: 'json' });
  }

  static async open(dir: string): Promise<UserStore> {
    const db = new Level<string, string>(dir);
    await db.open();
    // Password hashes: not for the service group that reads the rest of the data folder.
    chmodSync(dir, 0o700);
    return new UserStore(db);
  }

  async close(): Promise<void> {
    await this.db.close();
  }

  async get(username: string): Promise<User | null> {
    return (await this.users.get(username)) ?? null;
  }

  async all(): Promise<User[]> {
    const out: User[] = [];
    for await (const u of this.users.values()) out.push(u);
    return out;
  }

  /**
   * Stores a new account; null when the name is taken, or when `allowed` (checked in the same step as
   * the write) says no.
   */
  async add(u: Omit<User, 'id'>, allowed: (all: User[]) => boolean = () => true): Promise<User | null> {
    return this.serial(async () => {
      if ((await this.get(u.username)) || !allowed(await this.all())) return null;
      const user = { id: randomUUID(), ...u };
      await this.users.put(u.username, user);
      return user;
    });
  }

  /** Runs account writes one at a time, so a check and its write are never split by another. */
  private serial<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.queue.then(fn, fn);
    this.queue = run.then(
      () => undefined,
      () => undefined,
    );
    return run;
  }

  /**
   * Changes an account as it is at the moment of writing: `change` gets the record read inside the same
   * step as the write, so two changes never overwrite each other. Null when there is no such account.
   */
  async update(username: string, change: (u: User) => User): Promise<User | null> {
    return this.serial(async () => {
      const u = await this.get(username);
      if (!u) return null;
      const next = change(u);
      await this.users.put(username, next);
      return next;
    });
  }
}
