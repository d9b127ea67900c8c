import { statfs } from 'node:fs/promises';
import si from 'systeminformation';
import { clockSynchronized } from '../../native/libc.js';
import type { Config } from '../config/Config.js';
import type { AudioPath } from '../recorder/AudioPath.js';
import type { Alarms } from './Alarms.js';

export interface Health {
  status: 'ok' | 'degraded' | 'failing';
  checkedAt: string;
  disk: { path: string; freeBytes: number; totalBytes: number; freePercent: number; freeInodes: number; totalInodes: number };
  cpu: { loadPercent: number | null };
  memory: { availableBytes: number | null; totalBytes: number | null };
  temperatures: { mainC: number | null; maxC: number | null };
  clock: { synchronized: boolean };
  cards: Array<{ id: string; backend: string; framesCaptured: number; gaps: number; faulted: boolean }>;
  recording: { active: number; lines: number };
  pbx: { lastSignalAt: string | null };
}

/**
 * The health model: the data volume, the host (through systeminformation), the clock (the kernel's own
 * synchronised flag) and the pipeline, checked every `intervalMs`; each finding raises or clears an
 * alarm. Nothing personal is in it.
 */
export class HealthMonitor {
  private timer: NodeJS.Timeout | undefined;
  last: Health | null = null;
  lastSignalAt: string | null = null;
  private lastGapAt = new Map<string, number>();

  constructor(private readonly cfg: Config, private readonly path: AudioPath, private readonly active: () => number, private readonly alarms: Alarms) {
    path.on('gap', (cardId: string, gapMs: number) => {
      this.lastGapAt.set(cardId, Date.now());
      this.alarms.raise('AUDIO_GAP', cardId, 'warning', `card ${cardId} lost ${Math.round(gapMs)} ms of audio (filled with silence)`);
    });
    path.on('deviceFault', (cardId: string) => this.alarms.raise('CAPTURE_FAULT', cardId, 'critical', `capture card ${cardId} failed: reopening every 5 s`));
  }

  start(intervalMs = 10_000): void {
    const tick = (): void => void this.check().catch(() => undefined);
    tick();
    this.timer = setInterval(tick, intervalMs);
    this.timer.unref();
  }

  stop(): void {
    clearInterval(this.timer);
  }

  async check(): Promise<Health> {
    const t = this.cfg.alarms;
    const fs = await statfs(this.cfg.dataDir);
    const disk = {
      path: this.cfg.dataDir,
      freeBytes: fs.bavail * fs.bsize,
      totalBytes: fs.blocks * fs.bsize,
      freePercent: fs.blocks ? (fs.bavail / fs.blocks) * 100 : 0,
      freeInodes: fs.ffree,
      totalInodes: fs.files,
    };
    const [load, mem, temp] = await Promise.all([si.currentLoad().catch(() => null), si.mem().catch(() => null), si.cpuTemperature().catch(() => null)]);
    const health: Health = {
      status: 'ok',
      checkedAt: new Date().toISOString(),
      disk,
      cpu: { loadPercent: load ? Math.round(load.currentLoad * 10) / 10 : null },
      memory: { availableBytes: mem?.available ?? null, totalBytes: mem?.total ?? null },
      temperatures: { mainC: temp?.main ?? null, maxC: temp?.max ?? null },
      clock: { synchronized: clockSynchronized() },
      cards: this.path.cardStatus(),
      recording: { active: this.active(), lines: this.path.lineIds().length },
      pbx: { lastSignalAt: this.lastSignalAt },
    };
    const a = this.alarms;
    const pct = disk.freePercent.toFixed(1);
    if (disk.freePercent < t.diskCriticalPercent) a.raise('DISK_LOW', 'data', 'critical', `data volume ${pct}% free (critical below ${t.diskCriticalPercent}%)`);
    else if (disk.freePercent < t.diskWarnPercent) a.raise('DISK_LOW', 'data', 'warning', `data volume ${pct}% free (warning below ${t.diskWarnPercent}%)`);
    else a.clear('DISK_LOW', 'data');
    const inodePct = disk.totalInodes ? (disk.freeInodes / disk.totalInodes) * 100 : 100;
    if (inodePct < t.inodeWarnPercent) a.raise('INODES_LOW', 'data', 'warning', `data volume ${inodePct.toFixed(1)}% inodes free`);
    else a.clear('INODES_LOW', 'data');
    if (health.cpu.loadPercent !== null && health.cpu.loadPercent > t.cpuWarnPercent) a.raise('CPU_HIGH', 'host', 'warning', `CPU load ${health.cpu.loadPercent}%`);
    else a.clear('CPU_HIGH', 'host');
    const hot = health.temperatures.maxC ?? health.temperatures.mainC;
    if (hot !== null && hot > t.temperatureWarnC) a.raise('TEMPERATURE_HIGH', 'host', 'warning', `temperature ${hot} °C`);
    else a.clear('TEMPERATURE_HIGH', 'host');
    if (!health.clock.synchronized) a.raise('CLOCK_UNSYNCED', 'host', 'warning', 'the system clock is not synchronised (timesyncd/chrony): timestamps are suspect');
    else a.clear('CLOCK_UNSYNCED', 'host');
    const lag = this.path.encoderLagS;
    // The ring holds ring.seconds: past half of it, audio is at risk of being overwritten before it is encoded.
    if (lag > this.cfg.ring.seconds / 2) a.raise('ENCODER_LAG', 'encoders', 'critical', `encoders are ${lag.toFixed(1)} s behind capture (the ring holds ${this.cfg.ring.seconds} s)`);
    else if (lag > 1) a.raise('ENCODER_LAG', 'encoders', 'warning', `encoders are ${lag.toFixed(1)} s behind capture`);
    else a.clear('ENCODER_LAG', 'encoders');
    for (const c of health.cards) {
      if (!c.faulted) a.clear('CAPTURE_FAULT', c.id);
      const gapAt = this.lastGapAt.get(c.id);
      if (gapAt !== undefined && Date.now() - gapAt > 10 * 60_000) a.clear('AUDIO_GAP', c.id);
    }
    const alarms = a.list();
    health.status = alarms.some((x) => x.severity === 'critical') ? 'failing' : alarms.length > 0 ? 'degraded' : 'ok';
    this.last = health;
    return health;
  }
}
