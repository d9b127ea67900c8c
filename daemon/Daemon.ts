import { chmodSync, mkdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Logger } from 'pino';
import type { Config } from './config/Config.js';
import { CallManager } from './calls/CallManager.js';
import { ControlServer } from './control/ControlServer.js';
import { AudioPath } from './recorder/AudioPath.js';
import { CallService, type SearchParams } from './services/CallService.js';
import { paramsFor, REQUEST } from './services/requests.js';
import { ServiceError } from './services/errors.js';
import { AuditTrail, type AuditActor } from './access/AuditTrail.js';
import { LoginGuard } from './access/LoginGuard.js';
import { matrix } from './access/permissions.js';
import { Sessions } from './access/Sessions.js';
import { UserStore } from './access/UserStore.js';
import type { Actor } from './access/Actor.js';
import { AuditService, type AuditSearchParams } from './services/AuditService.js';
import { Guard } from './services/Guard.js';
import { Services } from './services/Services.js';
import { SessionService } from './services/SessionService.js';
import { SystemService } from './services/SystemService.js';
import { UserService, type NewUser, type UserChange } from './services/UserService.js';
import type { ControlContext } from './control/ControlServer.js';
import { peerInGroup } from '../native/peerCred.js';
import { PbxListener } from './signals/PbxListener.js';
import { recoverInterrupted, repairRecording, sweepTemporaryFiles } from './store/recoverInterrupted.js';
import { destructionLogPath, epochStorePath, indexPath, sidecarPath } from './store/recordingPaths.js';
import { Destroyer } from './store/Destroyer.js';
import { Retention } from './store/Retention.js';
import { epochsOnDisk } from './store/rebuildIndex.js';
import { EpochKeyStore } from './keys/EpochKeyStore.js';
import { KeyRing } from './keys/KeyRing.js';
import { loadMasterKeys } from './keys/MasterKey.js';
import { RecordingStore } from './store/RecordingStore.js';
import { checkEncryptedDisk } from './ops/encryptedDisk.js';
import { Alarms, type Alarm } from './ops/Alarms.js';
import { HealthMonitor } from './ops/HealthMonitor.js';
import { Metrics } from './ops/Metrics.js';
import { DiskGuard } from './ops/DiskGuard.js';
import { AdminListener } from './api/AdminListener.js';
import type { RecordingMeta } from './store/RecordingMeta.js';

export interface DaemonStatus {
  version: string;
  startedAt: string;
  uptimeS: number;
  lines: number;
  activeRecordings: number;
  recordingsStored: number;
  cards: Array<{ id: string; backend: string; framesCaptured: number; gaps: number; faulted: boolean }>;
  pbx: { host: string; port: number };
  admin: { host: string; port: number };
  socket: string;
  alarms: Alarm[];
  /** For what people read; stored times stay UTC. */
  displayTimeZone: string;
}

/** Wires the rooms together: store, audio path, calls, the PBX door and the control socket. */
export class Daemon {
  store!: RecordingStore;
  path!: AudioPath;
  calls!: CallManager;
  service!: CallService;
  services!: Services;
  users!: UserStore;
  audit!: AuditTrail;
  destroyer!: Destroyer;
  retention!: Retention;
  private sweepTimer: NodeJS.Timeout | undefined;
  alarms!: Alarms;
  disk!: DiskGuard;
  health!: HealthMonitor;
  metrics!: Metrics;
  private admin!: AdminListener;
  adminAddress = { host: '', port: 0 };
  private pbx!: PbxListener;
  private control!: ControlServer;
  pbxAddress = { host: '', port: 0 };
  private readonly startedAt = new Date();
  private readonly startedMono = performance.now();

  constructor(readonly cfg: Config, readonly log: Logger) {}

  /** Starts every room; on failure closes what was opened (the index's lock first of all) and rethrows. */
  async start(): Promise<void> {
    try {
      await this.open();
    } catch (err) {
      await this.stop().catch(() => undefined);
      throw err;
    }
  }

  private async open(): Promise<void> {
    const disk = checkEncryptedDisk(this.cfg.dataDir);
    if (!disk.encrypted) {
      if (this.cfg.storage.requireEncryptedDisk) throw new Error(`dataDir ${this.cfg.dataDir} is not on an encrypted disk: ${disk.reason}`);
      this.log.warn({ dataDir: this.cfg.dataDir, reason: disk.reason }, 'DATA IS NOT ON AN ENCRYPTED DISK (storage.requireEncryptedDisk is false): fine for a demo, never for real calls');
    }
    mkdirSync(this.cfg.dataDir, { recursive: true, mode: 0o750 });
    chmodSync(this.cfg.dataDir, 0o750); // personal data: never world-readable, whatever made the folder
    const masters = loadMasterKeys({ credential: this.cfg.keys.masterCredential, ...(this.cfg.keys.masterFile ? { file: this.cfg.keys.masterFile } : {}), create: this.cfg.keys.createMasterFile });
    const keys = new KeyRing(new EpochKeyStore(epochStorePath(this.cfg.dataDir), masters));
    this.store = await RecordingStore.open(indexPath(this.cfg.dataDir), keys, (id, startedAt) => sidecarPath(this.cfg.dataDir, id, startedAt));
    this.destroyer = new Destroyer(this.cfg.dataDir, this.store, destructionLogPath(this.cfg.dataDir), this.log);
    await this.destroyer.replay();
    await this.checkIndexAgainstDisk(keys);
    this.retention = new Retention(this.store, this.destroyer, keys.epochs, () => this.cfg.retention.months, this.log, () => epochsOnDisk(this.cfg.dataDir));
    const swept = sweepTemporaryFiles(this.cfg.dataDir);
    if (swept > 0) this.log.warn({ swept }, 'temporary files left by a crash removed');
    const repaired = await recoverInterrupted(this.cfg.dataDir, this.store, this.log);
    if (repaired > 0) this.log.warn({ repaired }, 'recordings left open by a crash were repaired');
    this.path = new AudioPath(this.cfg, this.log);
    await this.path.start();
    this.calls = new CallManager(this.cfg, this.path, this.store, this.log);
    this.users = await UserStore.open(join(this.cfg.dataDir, 'access'));
    this.audit = await AuditTrail.open(join(this.cfg.dataDir, 'audit'), masters, this.log, { headEveryMs: this.cfg.access.auditHeadSeconds * 1000 });
    const grants = () => matrix(this.cfg.access.technicianListens);
    const guard = new Guard(grants, this.audit);
    const sessions = new Sessions(() => ({ idleMs: this.cfg.access.sessionIdleMinutes * 60_000, maxMs: this.cfg.access.sessionMaxHours * 3600_000 }));
    const loginGuard = new LoginGuard(() => ({ failures: this.cfg.access.lockoutFailures, lockMs: this.cfg.access.lockoutMinutes * 60_000 }));
    this.service = new CallService(this.cfg, this.store, this.destroyer, guard);
    const userService = new UserService(this.users, sessions, loginGuard, guard);
    this.services = new Services(
      this.service,
      userService,
      new SessionService(this.users, sessions, loginGuard, guard),
      new AuditService(this.audit, guard, (name) => userService.knownName(name)),
      new SystemService(guard, () => this.status(), async () => this.store.keys.epochs.rotate()),
      grants,
    );
    await this.retention.sweep();
    this.sweepTimer = setInterval(() => {
      this.retention.sweep().catch((err: Error) => this.log.error({ err: err.message }, 'retention sweep failed'));
    }, 3600_000);
    this.sweepTimer.unref();
    this.alarms = new Alarms(this.log);
    this.health = new HealthMonitor(this.cfg, this.path, () => this.calls.activeCount, this.alarms);
    this.metrics = new Metrics(this.path, () => this.calls.activeCount, this.health, this.alarms);
    this.calls.finished.push((m) => this.onFinished(m));
    this.path.onEncoderPump = (s) => this.metrics.encodePump.observe(s);
    this.path.onFramesEncoded = (n) => this.metrics.framesEncoded.inc(n);
    this.disk = new DiskGuard(this.cfg.dataDir, () => ({ reserveBytes: this.cfg.storage.reserveMb * 2 ** 20, floorBytes: this.cfg.storage.floorMb * 2 ** 20 }));
    this.calls.canRecord = () => this.disk.canRecord;
    this.calls.repair = (meta, status) => repairRecording(this.cfg.dataDir, this.store, meta, status, this.log);
    this.calls.notRecorded = (reason) => this.metrics.notRecorded.inc({ reason });
    this.disk.on('change', (state: string, free: number) => this.onDiskState(state, free));
    this.disk.start();
    this.pbx = new PbxListener(
      {
        ...this.cfg.signals,
        hasLine: (id) => this.path.hasLine(id),
        onHttpStatus: (status) => this.metrics.httpRequests.inc({ listener: 'pbx', status: String(status) }),
        onOutcome: (type, outcome) => {
          this.metrics.signalEvents.inc({ type, outcome });
          this.health.lastSignalAt = new Date().toISOString();
        },
      },
      this.calls,
      this.log,
    );
    this.pbxAddress = await this.pbx.start();
    this.admin = new AdminListener(this.cfg.admin, this.health, this.alarms, this.metrics, this.services, { sessionMaxS: () => this.cfg.access.sessionMaxHours * 3600, status: () => this.status() }, this.log);
    this.adminAddress = await this.admin.start();
    this.health.start();
    this.control = new ControlServer(this.cfg.control.socket, this.controlMethods(), this.log);
    await this.control.start();
    this.log.info({ pbx: this.pbxAddress, admin: this.adminAddress, socket: this.cfg.control.socket, lines: this.path.lineIds().length }, 'callrecd ready');
  }

  /** Stops taking calls, closes every open recording cleanly, then the devices and the store. */
  async stop(): Promise<void> {
    clearInterval(this.sweepTimer);
    this.disk?.stop();
    this.health?.stop();
    await this.pbx?.stop();
    await this.admin?.stop();
    await this.calls?.closeAll();
    await this.control?.stop();
    await this.path?.stop();
    await this.store?.close();
    await this.audit?.close();
    await this.users?.close();
    this.log.info('callrecd stopped');
  }

  /**
   * Refuses to run on an index that lost what the disk still holds (LevelDB makes a fresh, empty one for a
   * missing or gutted folder), or on recordings whose month has no key (a lost key store): either would
   * let retention or new recordings bury them for good.
   */
  private async checkIndexAgainstDisk(keys: KeyRing): Promise<void> {
    const months = epochsOnDisk(this.cfg.dataDir);
    const missing = [...months].filter((e) => !keys.epochs.has(e));
    if (missing.length > 0) throw new Error(`recordings of ${missing.join(', ')} are on disk but ${epochStorePath(this.cfg.dataDir)} has no key for them: restore the key store from its backup (docs/operations.md)`);
    if (months.size > 0 && (await this.store.count()) === 0) {
      throw new Error(`the index ${indexPath(this.cfg.dataDir)} is empty but recordings are on disk: stop, run \`callrec db rebuild --offline --config FILE\`, start again`);
    }
  }

  /**
   * SIGHUP: takes what can change live (retention, alarm thresholds, log level) from a config that has
   * already passed validation; names what would need a restart and keeps it as it is.
   */
  reload(next: Config): { applied: string[]; needsRestart: string[] } {
    const live = ['retention', 'alarms', 'log', 'access'] as const;
    const applied: string[] = [];
    for (const k of live) {
      if (JSON.stringify(this.cfg[k]) !== JSON.stringify(next[k])) {
        (this.cfg as unknown as Record<string, unknown>)[k] = next[k];
        applied.push(k);
      }
    }
    if (applied.includes('log')) this.log.level = next.log.level;
    const needsRestart = (Object.keys(next) as Array<keyof Config>).filter((k) => k !== 'source' && !(live as readonly string[]).includes(k) && JSON.stringify(this.cfg[k]) !== JSON.stringify(next[k]));
    this.log.info({ applied, needsRestart }, needsRestart.length ? 'config reloaded; some changes need a restart' : 'config reloaded');
    const system: AuditActor = { user: null, roles: [], via: 'system', from: 'SIGHUP' };
    this.audit.append({ actor: system, action: 'config.reload', details: { applied, needsRestart }, outcome: 'ok' }).catch((err: Error) => this.log.error({ err: err.message }, 'audit trail: cannot record the reload'));
    return { applied, needsRestart };
  }

  private onDiskState(state: string, free: number): void {
    const mb = Math.round(free / 2 ** 20);
    if (state === 'ok') {
      this.alarms.clear('DISK_RESERVE', 'data');
      void this.calls.repairPending();
      this.log.warn({ freeMb: mb }, 'data volume above its reserve again: recording resumes');
      return;
    }
    if (state === 'low') this.alarms.raise('DISK_RESERVE', 'data', 'critical', `data volume below its reserve (${mb} MiB free): new calls are not recorded`);
    if (state === 'full') {
      this.alarms.raise('DISK_RESERVE', 'data', 'critical', `data volume below its floor (${mb} MiB free): recordings in progress were closed, new calls are not recorded`);
      void this.calls.closeForDiskFull();
    }
  }

  /** Per finished call: metrics, and the silent-line alarm (set by a silent call, cleared by a sound one). */
  private onFinished(m: RecordingMeta): void {
    this.metrics.recordingsFinished.inc({ status: m.status });
    const silent = m.flags.filter((f) => f === 'no_audio' || f === 'no_caller_audio' || f === 'no_adviser_audio');
    if (silent.length > 0) {
      const what = silent.map((f) => (f === 'no_audio' ? 'no audio' : f === 'no_caller_audio' ? 'no caller audio' : 'no adviser audio')).join(', ');
      this.alarms.raise('AUDIO_SILENT', m.line, 'warning', `${what} on line ${m.line} through a whole call`);
    } else if (m.durationMs !== null && m.durationMs >= 5000) {
      this.alarms.clear('AUDIO_SILENT', m.line);
    }
  }

  async status(): Promise<DaemonStatus> {
    return {
      version: '0.1.0',
      startedAt: this.startedAt.toISOString(),
      uptimeS: Math.round((performance.now() - this.startedMono) / 1000),
      lines: this.path.lineIds().length,
      activeRecordings: this.calls.activeCount,
      recordingsStored: await this.store.count(),
      cards: this.path.cardStatus(),
      pbx: this.pbxAddress,
      admin: this.adminAddress,
      socket: this.cfg.control.socket,
      alarms: this.alarms.list(),
      displayTimeZone: this.cfg.display.timeZone,
    };
  }

  /** The CLI's door: every method but login and the first administrator's creation needs a session. */
  private controlMethods(): Record<string, (p: Record<string, unknown>, ctx: ControlContext) => Promise<unknown>> {
    const str = (p: Record<string, unknown>, k: string): string | undefined => {
      const v = p[k];
      if (v === undefined) return undefined;
      if (typeof v !== 'string') throw new ServiceError('bad_request', `${k}: must be a string`);
      return v;
    };
    const s = this.services;
    const from = (ctx: ControlContext): string => (ctx.peer ? `uid:${ctx.peer.uid}` : 'uid:unknown');
    const as =
      (fn: (actor: Actor, p: Record<string, unknown>, ctx: ControlContext) => Promise<unknown>) =>
      async (p: Record<string, unknown>, ctx: ControlContext): Promise<unknown> =>
        fn((await s.sessions.resolve(ctx.session, 'cli', from(ctx))).actor, p, ctx);
    // The socket's params are checked against the API's request schemas (services/requests.ts).
    return {
      'session.login': async (p, ctx) => {
        const r = await s.sessions.login(p.username, p.password, 'cli', from(ctx));
        return { token: r.token, expiresAt: r.expiresAt, user: r.user };
      },
      'session.logout': as((actor, _p, ctx) => s.sessions.logout(actor, ctx.session!)),
      'session.whoami': async (_p, ctx) => {
        const { actor, session } = await s.sessions.resolve(ctx.session, 'cli', from(ctx));
        const { csrfToken: _c, ...who } = await s.sessions.whoami(actor, session);
        return who;
      },
      'users.bootstrap': async (p, ctx) => {
        const peer: AuditActor = { user: null, roles: [], via: 'cli', from: from(ctx) };
        if (!ctx.peer || !peerInGroup(ctx.peer, this.serviceGid())) {
          await this.audit.append({ actor: peer, action: 'users.bootstrap', outcome: 'denied' }); // what a refused peer typed is not kept
          throw new ServiceError('forbidden', `the first administrator can be added only by root or a member of group ${this.cfg.access.serviceGroup}`);
        }
        return s.users.bootstrapAdmin(peer, { username: str(p, 'username') ?? '', roles: ['admin'], password: str(p, 'password') ?? '', ...(str(p, 'displayName') ? { displayName: str(p, 'displayName')! } : {}) });
      },
      'users.list': as((actor) => s.users.list(actor)),
      'users.add': as((actor, p) => s.users.add(actor, paramsFor<NewUser>(REQUEST.newUser, p))),
      'users.update': as((actor, p) => s.users.update(actor, str(p, 'username') ?? '', paramsFor<UserChange>(REQUEST.userChange, p))),
      'users.password': as((actor, p) => s.users.resetPassword(actor, str(p, 'username') ?? '', paramsFor<{ password: string }>(REQUEST.reset, p).password)),
      'account.password': as((actor, p) => {
        const c = paramsFor<{ currentPassword: string; password: string }>(REQUEST.change, p);
        return s.users.changeOwnPassword(actor, c.currentPassword, c.password);
      }),
      'calls.search': as((actor, p) => s.calls.search(actor, paramsFor<SearchParams>(REQUEST.search, p))),
      'calls.show': as((actor, p) => s.calls.show(actor, str(p, 'id') ?? '')),
      'calls.export': as(async (actor, p) => {
        const format = str(p, 'format');
        if (format !== 'opus' && format !== 'wav') throw new ServiceError('bad_request', 'format: opus or wav');
        return { data: (await s.calls.export(actor, str(p, 'id') ?? '', format)).toString('base64') };
      }),
      'calls.destroy': as((actor, p) => s.calls.destroy(actor, str(p, 'id') ?? '', paramsFor<{ reason: string }>(REQUEST.destroy, p).reason)),
      'calls.training': as((actor, p) => s.calls.markTraining(actor, str(p, 'id') ?? '', paramsFor<{ marked: boolean }>(REQUEST.training, p).marked)),
      'verify.ids': as((actor) => s.calls.verifiableIds(actor)),
      verify: as((actor, p) => s.calls.verify(actor, str(p, 'id') ?? '')),
      'keys.rotate': as((actor) => s.system.rotateKeys(actor)),
      status: as((actor) => s.system.status(actor)),
      /** For plain output: the display time zone (any logged-in person). */
      display: as(async () => ({ displayTimeZone: this.cfg.display.timeZone })),
      'audit.search': as((actor, p) => s.audit.search(actor, paramsFor<AuditSearchParams>(REQUEST.audit, p))),
      'audit.verify': as((actor, p) => s.audit.verify(actor, Array.isArray(p.heads) ? (p.heads as Array<{ seq: number; hash: string }>) : [])),
    };
  }

  /** The service group's gid (from /etc/group), or -1 when there is none (then only root qualifies). */
  private serviceGid(): number {
    try {
      const line = readFileSync('/etc/group', 'utf8').split('\n').find((l) => l.split(':')[0] === this.cfg.access.serviceGroup);
      return line ? Number(line.split(':')[2]) : -1;
    } catch {
      return -1;
    }
  }
}
