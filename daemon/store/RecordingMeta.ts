/** Every status a recording can have (later issues use the rest). */
export const RECORDING_STATUSES = [
  'recording',
  'complete',
  'end_missing',
  'end_unknown',
  'interrupted',
  'superseded',
  'truncated_disk_full',
  'destroyed',
] as const;
export type RecordingStatus = (typeof RECORDING_STATUSES)[number];

export type CallerClass = 'number' | 'anonymous' | 'unparsable';
export type CallerPresentation = 'allowed' | 'restricted' | 'unavailable';

export interface CodecInfo {
  name: 'opus';
  sampleRate: number;
  channels: number;
  /** Bits per second per channel. */
  bitrate: number;
  complexity: number;
}

/** The metadata of one recording: the fields of `callrec calls show --json` (docs/recording.schema.json). */
export interface RecordingMeta {
  id: string;
  callId: string;
  line: string;
  startedAt: string;
  endedAt: string | null;
  durationMs: number | null;
  caller: string;
  callerNormalized: string | null;
  callerClass: CallerClass;
  callerPresentation: CallerPresentation;
  serviceNumber: string;
  agentId: string | null;
  agentName: string | null;
  status: RecordingStatus;
  flags: string[];
  gaps: Array<{ at: string; ms: number }>;
  codec: CodecInfo;
  audioBytes: number | null;
  audioSha256: string | null;
  /** The file as stored (sealed): its length and SHA-256. */
  storedBytes: number | null;
  storedSha256: string | null;
}

/** What is left of a destroyed recording: nothing personal. */
export interface RecordingTombstone {
  id: string;
  status: 'destroyed';
  destroyedAt: string;
  reason: string;
  /** The role of who (or what: `retention`) destroyed it. */
  role: string;
}

export type RecordingRecord = RecordingMeta | RecordingTombstone;

export const isTombstone = (r: { status: string }): r is RecordingTombstone => r.status === 'destroyed';
