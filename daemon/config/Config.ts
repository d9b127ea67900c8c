/** The daemon's configuration, as validated against config/schema.json (the one source of keys and defaults). */
export interface CardConfig {
  id: string;
  backend: 'virtual' | 'portaudio';
  channels: number;
  sampleRate: 8000 | 16000;
  /** portaudio: device name (exact match first, then substring). */
  device?: string;
  framesPerBuffer: number;
  maxQueue: number;
  readMs: number;
  /** virtual: speech files (WAV, s16) played one per channel, cycled; relative to the config file. */
  speech?: string[];
}

export interface LineConfig {
  id: string;
  card: string;
  /** One channel (mixed tap) or two: [caller, adviser]. */
  channels: number[];
}

export interface Config {
  /** Absolute path of the file this came from, or null for the embedded default. */
  source: string | null;
  dataDir: string;
  phone: { defaultRegion: string };
  cards: CardConfig[];
  lines: LineConfig[];
  ring: { seconds: number };
  encode: { bitrate: number; complexity: number; workers: number };
  recording: { pageFlushMs: number; lateEndMs: number; maxDurationS: number; endReconcileMs: number };
  signals: { host: string; port: number; token: string };
  control: { socket: string };
  keys: { masterCredential: string; masterFile?: string; createMasterFile: boolean };
  retention: { months: number };
  display: { timeZone: string };
  storage: { requireEncryptedDisk: boolean; reserveMb: number; floorMb: number };
  admin: { host: string; port: number; metricsToken?: string; tls?: { certFile: string; keyFile: string }; hostNames: string[] };
  access: { technicianListens: boolean; sessionIdleMinutes: number; sessionMaxHours: number; lockoutFailures: number; lockoutMinutes: number; serviceGroup: string; auditHeadSeconds: number };
  alarms: { diskWarnPercent: number; diskCriticalPercent: number; inodeWarnPercent: number; cpuWarnPercent: number; temperatureWarnC: number; silentLineDbfs: number };
  log: { level: 'trace' | 'debug' | 'info' | 'warn' | 'error' | 'fatal' | 'silent' };
}
