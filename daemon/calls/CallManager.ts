import { randomInt } from 'node:crypto';
import type { Logger } from 'pino';
import type { Config } from '../config/Config.js';
import type { AudioPath } from '../recorder/AudioPath.js';
import type { EncodeResult } from '../encode/messages.js';
import { newRecordingId } from '../store/recordingId.js';
import { audioPath } from '../store/recordingPaths.js';
import type { RecordingMeta, RecordingStatus } from '../store/RecordingMeta.js';
import type { RecordingStore } from '../store/RecordingStore.js';
import { classifyCaller } from './callerNumber.js';
import type { CallEvent, EventOutcome } from './CallEvent.js';
import { RecentIds } from './RecentIds.js';

/** One call being recorded: its state from start to the file's completion. */
interface ActiveCall {
  callId: string;
  meta: RecordingMeta;
  startFrame: number;
  startMs: number;
  ending: boolean;
  maxTimer: NodeJS.Timeout;
  done: Promise<void>;
}

/** Signals that came before their call's start, held a little to be matched. */
interface Orphans {
  answer?: CallEvent;
  end?: CallEvent;
  timer: NodeJS.Timeout;
}

const EVENT_IDS_KEPT = 100_000;

/**
 * The calls: one state machine per call (start -> answered -> ended), driven by PBX signals in arrival
 * order. It decides what is recorded (until recording rules exist: every call) and tells the audio path
 * when, and keeps each recording's metadata in the store.
 */
export class CallManager {
  private readonly active = new Map<string, ActiveCall>();
  private readonly byLine = new Map<string, string>();
  private readonly ended = new RecentIds<string | null>(EVENT_IDS_KEPT);
  private readonly seen = new RecentIds<true>(EVENT_IDS_KEPT);
  private readonly orphans = new Map<string, Orphans>();
  /** Events are applied one at a time: each may touch two calls and the store. */
  private queue: Promise<unknown> = Promise.resolve();
  private closing = false;
  readonly finished: Array<(meta: RecordingMeta) => void> = [];
  /** Repairs a recording whose writer failed (set by the daemon: the store's repair). */
  repair: (meta: RecordingMeta, status: RecordingStatus) => Promise<void> = async () => undefined;
  private readonly pendingRepair = new Map<string, { status: RecordingStatus; flag: string }>();
  /** Says whether a new call may be recorded now (the disk guard); told of each call it turned away. */
  canRecord: () => boolean = () => true;
  notRecorded: (reason: string) => void = () => undefined;

  constructor(private readonly cfg: Config, private readonly path: AudioPath, private readonly store: RecordingStore, private readonly log: Logger) {}

  handle(ev: CallEvent): Promise<EventOutcome> {
    const next = this.queue.then(() => this.apply(ev));
    this.queue = next.catch(() => undefined);
    return next;
  }

  get activeCount(): number {
    return this.active.size;
  }

  /** Shutdown: stop taking calls and close every open recording at the newest audio, as `interrupted`. */
  async closeAll(): Promise<void> {
    this.closing = true;
    await this.queue;
    for (const o of this.orphans.values()) clearTimeout(o.timer);
    this.orphans.clear();
    const calls = [...this.active.values()];
    // Calls already ending keep the end they were given; only open ones are cut at the newest audio.
    for (const call of calls) if (!call.ending) this.endCall(call, this.path.nowFrame(call.meta.line), 'interrupted', ['interrupted_by_shutdown'], true);
    await Promise.all(calls.map((c) => c.done));
  }

  private async apply(ev: CallEvent): Promise<EventOutcome> {
    if (this.seen.has(ev.id)) return { status: 'duplicate', recordingId: null };
    this.seen.set(ev.id, true);
    if (this.closing) return { status: 'accepted', recordingId: null };
    switch (ev.type) {
      case 'start':
        return { status: 'accepted', recordingId: await this.onStart(ev) };
      case 'answer':
        return { status: 'accepted', recordingId: await this.onAnswer(ev) };
      case 'end':
        return { status: 'accepted', recordingId: this.onEnd(ev) };
    }
  }

  private async onStart(ev: CallEvent): Promise<string | null> {
    const existing = this.active.get(ev.callId);
    if (existing) {
      this.log.warn({ recordingId: existing.meta.id }, 'second start for a call: ignored');
      return existing.meta.id;
    }
    if (this.ended.has(ev.callId)) {
      this.log.warn('start for a call that has ended: ignored');
      return this.ended.get(ev.callId) ?? null;
    }
    const line = ev.line!;
    if (!this.canRecord()) {
      // Not recorded: the disk is below its reserve. Its later signals are answered, with no recording.
      this.ended.set(ev.callId, null);
      this.notRecorded('disk_low');
      this.log.warn({ line }, 'call not recorded: the data volume is below its reserve');
      return null;
    }
    const flags: string[] = [];
    const { frame: startFrame, clamped } = this.path.frameAt(line, ev.atMs);
    if (clamped) flags.push('clamped_start');
    const startMs = clamped ? this.path.wallAt(line, startFrame) : ev.atMs;

    // A new call on a busy line: the PBX missed an end. The old recording stops where this one starts.
    const busyWith = this.byLine.get(line);
    if (busyWith) {
      const old = this.active.get(busyWith)!;
      this.log.warn({ line, recordingId: old.meta.id }, 'start on a busy line: previous recording superseded');
      this.endCall(old, Math.max(startFrame, old.startFrame), 'superseded', ['superseded'], false);
    }

    const { sampleRate, channels } = this.path.lineInfo(line);
    const caller = ev.caller ?? '';
    const presentation = ev.callerPresentation ?? 'allowed';
    const id = newRecordingId();
    const meta: RecordingMeta = {
      id,
      callId: ev.callId,
      line,
      startedAt: new Date(startMs).toISOString(),
      endedAt: null,
      durationMs: null,
      caller,
      ...classifyCaller(caller, presentation, this.cfg.phone.defaultRegion),
      callerPresentation: presentation,
      serviceNumber: ev.serviceNumber!,
      agentId: null,
      agentName: null,
      status: 'recording',
      flags,
      gaps: [],
      codec: { name: 'opus', sampleRate, channels, bitrate: this.cfg.encode.bitrate, complexity: this.cfg.encode.complexity },
      audioBytes: null,
      audioSha256: null,
      storedBytes: null,
      storedSha256: null,
    };
    const key = await this.store.create(meta);
    const file = audioPath(this.cfg.dataDir, id, meta.startedAt);
    const encoding = this.path.record({ id, line, startFrame, path: file, serial: randomInt(1, 2 ** 31), key });
    key.fill(0); // the worker has its own copy
    // Counted from the call's start (`at`), not from when the signal arrived.
    const maxTimer = setTimeout(() => {
      void this.handleTimeout(ev.callId);
    }, Math.max(0, startMs + this.cfg.recording.maxDurationS * 1000 - Date.now()));
    maxTimer.unref();
    const call: ActiveCall = { callId: ev.callId, meta, startFrame, startMs, ending: false, maxTimer, done: Promise.resolve() };
    call.done = encoding.then(
      (result) => this.complete(call, result),
      (err: Error) => this.fail(call, err),
    );
    this.active.set(ev.callId, call);
    this.byLine.set(line, ev.callId);
    this.log.info({ recordingId: id, line }, 'recording started');

    const held = this.orphans.get(ev.callId);
    if (held) {
      clearTimeout(held.timer);
      this.orphans.delete(ev.callId);
      if (held.answer) await this.onAnswer(held.answer);
      if (held.end) this.onEnd(held.end);
    }
    return id;
  }

  private async onAnswer(ev: CallEvent): Promise<string | null> {
    const call = this.active.get(ev.callId);
    if (!call) return this.holdOrphan(ev);
    call.meta.agentId = ev.agent!.id;
    call.meta.agentName = ev.agent!.name;
    if (!call.ending) await this.store.put(call.meta);
    return call.meta.id;
  }

  private onEnd(ev: CallEvent): string | null {
    const call = this.active.get(ev.callId);
    if (!call) return this.holdOrphan(ev);
    if (call.ending) return call.meta.id;
    const { frame, clamped } = this.path.frameAt(call.meta.line, ev.atMs);
    const flags = clamped ? ['clamped_end'] : [];
    let end = frame;
    if (end < call.startFrame) {
      end = call.startFrame;
      flags.push('clamped_end');
    }
    this.endCall(call, end, 'complete', flags, false);
    return call.meta.id;
  }

  private holdOrphan(ev: CallEvent): string | null {
    const known = this.ended.get(ev.callId);
    if (known !== undefined) return known;
    let o = this.orphans.get(ev.callId);
    if (!o) {
      const timer = setTimeout(() => {
        this.orphans.delete(ev.callId);
        this.log.warn('signal for a call that never started: dropped');
      }, this.cfg.recording.endReconcileMs);
      timer.unref();
      o = { timer };
      this.orphans.set(ev.callId, o);
    }
    if (ev.type === 'answer') o.answer = ev;
    else o.end = ev;
    return null;
  }

  /** The disk is nearly full: every recording in progress is closed now, while it can still be closed cleanly. */
  closeForDiskFull(): Promise<void> {
    const next = this.queue.then(() => {
      for (const call of this.active.values()) if (!call.ending) this.endCall(call, this.path.nowFrame(call.meta.line), 'truncated_disk_full', ['disk_full'], true);
    });
    this.queue = next.catch(() => undefined);
    return next;
  }

  private async handleTimeout(callId: string): Promise<void> {
    await (this.queue = this.queue.then(() => {
      const call = this.active.get(callId);
      if (!call || call.ending) return;
      this.log.warn({ recordingId: call.meta.id }, 'no end signal: recording closed at the maximum length');
      const end = call.startFrame + this.cfg.recording.maxDurationS * this.path.lineInfo(call.meta.line).sampleRate;
      this.endCall(call, end, 'end_missing', ['end_missing'], false);
    }));
  }

  private endCall(call: ActiveCall, endFrame: number, status: RecordingStatus, flags: string[], force: boolean): void {
    call.ending = true;
    clearTimeout(call.maxTimer);
    call.meta.status = status;
    for (const f of flags) if (!call.meta.flags.includes(f)) call.meta.flags.push(f);
    if (this.byLine.get(call.meta.line) === call.callId) this.byLine.delete(call.meta.line);
    this.path.stopRecording(call.meta.id, endFrame, force);
  }

  private async complete(call: ActiveCall, result: EncodeResult): Promise<void> {
    const { meta } = call;
    const { sampleRate } = this.path.lineInfo(meta.line);
    meta.durationMs = Math.round((result.frames * 1000) / sampleRate);
    meta.endedAt = new Date(call.startMs + meta.durationMs).toISOString();
    if (result.clampedEnd && !meta.flags.includes('clamped_end')) meta.flags.push('clamped_end');
    const endFrame = call.startFrame + result.frames;
    const gaps = this.path.gaps(meta.line, call.startFrame, endFrame).map((g) => ({ at: new Date(g.atMs).toISOString(), ms: Math.round(g.ms) }));
    for (const [frame, frames] of result.overruns) gaps.push({ at: new Date(this.path.wallAt(meta.line, frame)).toISOString(), ms: Math.round((frames * 1000) / sampleRate) });
    meta.gaps = gaps;
    if (gaps.length > 0 && !meta.flags.includes('gaps')) meta.flags.push('gaps');
    // The classic one-sided recording: a channel that stayed silent through a whole call.
    if (meta.durationMs >= 5000) {
      const names = result.peakDbfs.length === 2 ? ['no_caller_audio', 'no_adviser_audio'] : ['no_audio'];
      result.peakDbfs.forEach((db, c) => {
        if (db < this.cfg.alarms.silentLineDbfs && !meta.flags.includes(names[c]!)) meta.flags.push(names[c]!);
      });
    }
    meta.audioBytes = result.audioBytes;
    meta.audioSha256 = result.audioSha256;
    meta.storedBytes = result.storedBytes;
    meta.storedSha256 = result.storedSha256;
    await this.settle(call);
  }

  /**
   * The encoder stopped (a write failed: ENOSPC on a full disk, an I/O error). The file is repaired now if
   * it can be; if even that cannot be written, the record stays `recording` and `repairPending` retries
   * (the disk guard calls it when space returns; a restart would too).
   */
  private async fail(call: ActiveCall, err: Error): Promise<void> {
    this.log.error({ recordingId: call.meta.id, err: err.message }, 'recording failed');
    const diskFull = /ENOSPC|EDQUOT/.test(err.message);
    const status = diskFull ? 'truncated_disk_full' : 'interrupted';
    const flag = diskFull ? 'disk_full' : 'encoder_failed';
    if (!call.meta.flags.includes(flag)) call.meta.flags.push(flag);
    this.active.delete(call.callId);
    if (this.byLine.get(call.meta.line) === call.callId) this.byLine.delete(call.meta.line);
    this.ended.set(call.callId, call.meta.id);
    try {
      await this.repair(call.meta, status);
    } catch (repairErr) {
      this.pendingRepair.set(call.meta.id, { status, flag });
      this.log.error({ recordingId: call.meta.id, err: (repairErr as Error).message }, 'recording left open: its repair will be retried');
      return;
    }
    for (const f of this.finished) f(call.meta);
  }

  /** Retries the repairs that could not be written (called when disk space returns). */
  async repairPending(): Promise<void> {
    for (const [id, { status, flag }] of [...this.pendingRepair]) {
      const meta = (await this.store.get(id)) as RecordingMeta | null;
      if (!meta) {
        this.pendingRepair.delete(id);
        continue;
      }
      if (!meta.flags.includes(flag)) meta.flags.push(flag);
      try {
        await this.repair(meta, status);
        this.pendingRepair.delete(id);
        for (const f of this.finished) f(meta);
      } catch {
        // Still no room: the next call tries again.
      }
    }
  }

  private async settle(call: ActiveCall): Promise<void> {
    this.active.delete(call.callId);
    if (this.byLine.get(call.meta.line) === call.callId) this.byLine.delete(call.meta.line);
    this.ended.set(call.callId, call.meta.id);
    await this.store.put(call.meta);
    this.log.info({ recordingId: call.meta.id, status: call.meta.status, durationMs: call.meta.durationMs, flags: call.meta.flags }, 'recording finished');
    for (const f of this.finished) f(call.meta);
  }
}
