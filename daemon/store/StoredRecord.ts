import { open, seal } from '../keys/aead.js';
import type { Epoch } from '../keys/EpochKeyStore.js';
import type { RecordingMeta, RecordingTombstone } from './RecordingMeta.js';

/** The personal fields: kept only sealed under the recording's data key. */
export const PERSONAL_FIELDS = ['callId', 'caller', 'callerNormalized', 'serviceNumber', 'agentId', 'agentName'] as const;
type Personal = Pick<RecordingMeta, (typeof PERSONAL_FIELDS)[number]>;

/** What LevelDB (and the sidecar) hold for a recording: nothing personal in the clear. */
export interface StoredRecording extends Omit<RecordingMeta, (typeof PERSONAL_FIELDS)[number]> {
  v: 1;
  epoch: Epoch;
  /** The data key, sealed under the epoch key. */
  wrappedKey: string;
  /** The personal fields as sealed JSON. */
  sealed: string;
  storedBytes: number | null;
  storedSha256: string | null;
}

export type StoredRecord = StoredRecording | RecordingTombstone;

export function sealRecord(meta: RecordingMeta, extra: { epoch: Epoch; wrappedKey: string; storedBytes: number | null; storedSha256: string | null }, dataKey: Buffer): StoredRecording {
  const personal: Record<string, unknown> = {};
  const rest: Record<string, unknown> = { ...meta };
  for (const f of PERSONAL_FIELDS) {
    personal[f] = meta[f];
    delete rest[f];
  }
  return { v: 1, ...(rest as Omit<RecordingMeta, (typeof PERSONAL_FIELDS)[number]>), ...extra, sealed: seal(dataKey, Buffer.from(JSON.stringify(personal)), aad(meta.id)).toString('base64') };
}

export function openRecord(stored: StoredRecording, dataKey: Buffer): RecordingMeta {
  const personal = JSON.parse(open(dataKey, Buffer.from(stored.sealed, 'base64'), aad(stored.id), `metadata of ${stored.id}`).toString('utf8')) as Personal;
  const { v: _v, epoch: _e, wrappedKey: _w, sealed: _s, storedBytes: _sb, storedSha256: _ss, ...rest } = stored;
  // Field order as the contract lists it.
  return {
    id: rest.id,
    callId: personal.callId,
    line: rest.line,
    startedAt: rest.startedAt,
    endedAt: rest.endedAt,
    durationMs: rest.durationMs,
    caller: personal.caller,
    callerNormalized: personal.callerNormalized,
    callerClass: rest.callerClass,
    callerPresentation: rest.callerPresentation,
    serviceNumber: personal.serviceNumber,
    agentId: personal.agentId,
    agentName: personal.agentName,
    status: rest.status,
    flags: rest.flags,
    gaps: rest.gaps,
    codec: rest.codec,
    audioBytes: rest.audioBytes,
    audioSha256: rest.audioSha256,
    storedBytes: stored.storedBytes,
    storedSha256: stored.storedSha256,
  };
}

const aad = (id: string): string => `callrec metadata ${id}`;
