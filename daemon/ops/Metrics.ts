import { Counter, Gauge, Registry } from 'prom-client';
import type { Alarms } from './Alarms.js';
import type { HealthMonitor } from './HealthMonitor.js';
import type { AudioPath } from '../recorder/AudioPath.js';

/** Prometheus metrics (their own registry). Labels hold codes, lines and cards: never personal data. */
export class Metrics {
  readonly registry = new Registry();
  readonly signalEvents: Counter<'type' | 'outcome'>;
  readonly recordingsFinished: Counter<'status'>;
  readonly httpRequests: Counter<'listener' | 'status'>;
  readonly notRecorded: Counter<'reason'>;

  constructor(path: AudioPath, active: () => number, health: HealthMonitor, alarms: Alarms) {
    const r = this.registry;
    new Gauge({ name: 'callrec_active_recordings', help: 'Recordings in progress', registers: [r], collect() { this.set(active()); } });
    new Gauge({
      name: 'callrec_frames_captured',
      help: 'Sample frames captured per card since start',
      labelNames: ['card'],
      registers: [r],
      collect() {
        for (const c of path.cardStatus()) this.set({ card: c.id }, c.framesCaptured);
      },
    });
    new Gauge({
      name: 'callrec_audio_gaps',
      help: 'Audio gaps (lost capture) per card since start',
      labelNames: ['card'],
      registers: [r],
      collect() {
        for (const c of path.cardStatus()) this.set({ card: c.id }, c.gaps);
      },
    });
    new Gauge({
      name: 'callrec_card_faulted',
      help: '1 while a capture card is failing',
      labelNames: ['card'],
      registers: [r],
      collect() {
        for (const c of path.cardStatus()) this.set({ card: c.id }, c.faulted ? 1 : 0);
      },
    });
    new Gauge({ name: 'callrec_disk_free_bytes', help: 'Free bytes on the data volume', registers: [r], collect() { if (health.last) this.set(health.last.disk.freeBytes); } });
    new Gauge({
      name: 'callrec_alarms',
      help: 'Alarms in force',
      labelNames: ['code', 'severity'],
      registers: [r],
      collect() {
        this.reset();
        for (const a of alarms.list()) this.inc({ code: a.code, severity: a.severity });
      },
    });
    this.signalEvents = new Counter({ name: 'callrec_signal_events_total', help: 'PBX signals by type and outcome', labelNames: ['type', 'outcome'], registers: [r] });
    this.recordingsFinished = new Counter({ name: 'callrec_recordings_finished_total', help: 'Recordings finished, by status', labelNames: ['status'], registers: [r] });
    this.notRecorded = new Counter({ name: 'callrec_calls_not_recorded_total', help: 'Calls not recorded, by reason (disk_low)', labelNames: ['reason'], registers: [r] });
    this.httpRequests = new Counter({ name: 'callrec_http_requests_total', help: 'HTTP requests by listener and status', labelNames: ['listener', 'status'], registers: [r] });
  }
}
