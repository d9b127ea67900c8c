import type { Actor } from '../access/Actor.js';
import type { Guard } from './Guard.js';

/** The technicians' side: status and the key re-seal; each checked and audited like any other use. */
export class SystemService {
  constructor(private readonly guard: Guard, private readonly statusOf: () => Promise<unknown>, private readonly rotate: () => Promise<unknown>) {}

  async status(actor: Actor): Promise<unknown> {
    return this.guard.run(actor, 'system.status', 'system.status', {}, () => this.statusOf());
  }

  async rotateKeys(actor: Actor): Promise<unknown> {
    return this.guard.run(actor, 'system.keys.rotate', 'system.keys', { mutates: true }, () => this.rotate());
  }
}
