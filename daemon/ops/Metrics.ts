import { Counter, Gauge, Histogram, Registry } from 'prom-client';
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
  readonly encodePump: Histogram;
  readonly framesEncoded: Counter;

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
    new Gauge({
      name: 'callrec_frames_dropped',
      help: 'Sample frames lost to capture gaps per card since start (filled with silence)',
      labelNames: ['card'],
      registers: [r],
      collect() {
        for (const c of path.droppedFrames()) this.set({ card: c.id }, c.frames);
      },
    });
    new Gauge({ name: 'callrec_ring_fill_ratio', help: 'Share of the look-back ring the slowest encoder is behind by (1: audio is being lost)', registers: [r], collect() { this.set(path.ringFill); } });
    this.framesEncoded = new Counter({ name: 'callrec_frames_encoded_total', help: 'Sample frames encoded (all lines)', registers: [r] });
    new Gauge({ name: 'callrec_encoder_lag_seconds', help: 'Audio the slowest recording has captured but not yet encoded', registers: [r], collect() { this.set(path.encoderLagS); } });
    this.encodePump = new Histogram({ name: 'callrec_encode_pump_seconds', help: 'Wall time of one encoder pump (all of a worker\'s recordings, every 20 ms)', buckets: [0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1], registers: [r] });
    this.signalEvents = new Counter({ name: 'callrec_signal_events_total', help: 'PBX signals by type and outcome', labelNames: ['type', 'outcome'], registers: [r] });
    this.recordingsFinished = new Counter({ name: 'callrec_recordings_finished_total', help: 'Recordings finished, by status', labelNames: ['status'], registers: [r] });
    this.notRecorded = new Counter({ name: 'callrec_calls_not_recorded_total', help: 'Calls not recorded, by reason (disk_low)', labelNames: ['reason'], registers: [r] });
    this.httpRequests = new Counter({ name: 'callrec_http_requests_total', help: 'HTTP requests by listener and status', labelNames: ['listener', 'status'], registers: [r] });
  }
}
