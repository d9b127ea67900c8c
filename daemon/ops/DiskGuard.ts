import { statfsSync } from 'node:fs';
import { EventEmitter } from 'node:events';

export type DiskState = 'ok' | 'low' | 'full';

/**
 * Watches the data volume's free space every second: below `reserveBytes` new calls are not recorded
 * (`low`); below `floorBytes` the recordings in progress are closed while there is still room to close
 * them cleanly (`full`). Recording resumes by itself when space returns. Emits 'change' (state, free).
 */
export class DiskGuard extends EventEmitter {
  state: DiskState = 'ok';
  freeBytes = Number.POSITIVE_INFINITY;
  private timer: NodeJS.Timeout | undefined;

  constructor(private readonly dir: string, private readonly limits: () => { reserveBytes: number; floorBytes: number }) {
    super();
  }

  start(everyMs = 1000): void {
    this.check();
    this.timer = setInterval(() => this.check(), everyMs);
    this.timer.unref();
  }

  stop(): void {
    clearInterval(this.timer);
  }

  /** True while new calls may be recorded. */
  get canRecord(): boolean {
    return this.state === 'ok';
  }

  check(): DiskState {
    let free: number;
    try {
      const fs = statfsSync(this.dir);
      free = fs.bavail * fs.bsize;
    } catch {
      return this.state;
    }
    this.freeBytes = free;
    const { reserveBytes, floorBytes } = this.limits();
    const next: DiskState = free < floorBytes ? 'full' : free < reserveBytes ? 'low' : 'ok';
    if (next !== this.state) {
      const prev = this.state;
      this.state = next;
      this.emit('change', next, free, prev);
    }
    return next;
  }
}
