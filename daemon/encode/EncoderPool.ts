import { Worker } from 'node:worker_threads';
import type { EncodeJob, EncodeResult, FromWorker, ToWorker, WorkerStats } from './messages.js';

interface Pending {
  worker: Worker;
  resolve: (r: EncodeResult) => void;
  reject: (e: Error) => void;
}

export class EncodeFailedError extends Error {
  constructor(readonly recordingId: string, message: string) {
    super(`recording ${recordingId}: ${message}`);
    this.name = 'EncodeFailedError';
  }
}

/**
 * Encoder worker threads. Each recording goes to the worker with the fewest, and stays there; the main
 * thread only says start and stop, and hears the result.
 */
export class EncoderPool {
  private readonly workers: Worker[] = [];
  private readonly load = new Map<Worker, number>();
  private readonly pending = new Map<string, Pending>();

  constructor(size: number) {
    for (let i = 0; i < size; i++) {
      const worker = new Worker(new URL('./encoderWorker.js', import.meta.url));
      worker.on('message', (msg: FromWorker) => this.onMessage(worker, msg));
      worker.on('error', (err) => this.onWorkerDeath(worker, err));
      this.workers.push(worker);
      this.load.set(worker, 0);
    }
  }

  get active(): number {
    return this.pending.size;
  }

  /** Starts encoding; the promise settles when the file is complete (after `stop`). */
  start(job: EncodeJob): Promise<EncodeResult> {
    const worker = this.workers.reduce((a, b) => (this.load.get(b)! < this.load.get(a)! ? b : a));
    this.load.set(worker, this.load.get(worker)! + 1);
    return new Promise((resolve, reject) => {
      this.pending.set(job.id, { worker, resolve, reject });
      this.post(worker, { type: 'start', job });
    });
  }

  stop(id: string, endFrame: number, force = false): void {
    const p = this.pending.get(id);
    if (p) this.post(p.worker, { type: 'stop', id, endFrame, force });
  }

  async close(): Promise<void> {
    for (const w of this.workers) this.post(w, { type: 'shutdown' });
    await Promise.all(this.workers.map((w) => new Promise((r) => w.once('exit', r))));
  }

  private post(worker: Worker, msg: ToWorker): void {
    worker.postMessage(msg);
  }

  private settle(worker: Worker, id: string): Pending | undefined {
    const p = this.pending.get(id);
    if (!p) return undefined;
    this.pending.delete(id);
    this.load.set(worker, this.load.get(worker)! - 1);
    return p;
  }

  /** The latest stats of each worker. */
  readonly stats = new Map<Worker, WorkerStats>();
  /** Told of every pump time the workers report (for the latency histogram). */
  onPump: (seconds: number) => void = () => undefined;
  /** Told of the frames each worker encoded since its last report. */
  onEncoded: (frames: number) => void = () => undefined;

  get lagS(): number {
    let lag = 0;
    for (const s of this.stats.values()) lag = Math.max(lag, s.lagS);
    return lag;
  }

  private onMessage(worker: Worker, msg: FromWorker): void {
    if (msg.type === 'stats') {
      this.stats.set(worker, msg.stats);
      for (const s of msg.stats.pumpS) this.onPump(s);
      this.onEncoded(msg.stats.framesEncoded);
      return;
    }
    if (msg.type === 'done') this.settle(worker, msg.result.id)?.resolve(msg.result);
    else this.settle(worker, msg.id)?.reject(new EncodeFailedError(msg.id, msg.message));
  }

  private onWorkerDeath(worker: Worker, err: Error): void {
    for (const [id, p] of [...this.pending]) if (p.worker === worker) this.settle(worker, id)?.reject(new EncodeFailedError(id, `encoder worker died: ${err.message}`));
  }
}
