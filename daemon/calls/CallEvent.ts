import type { CallerPresentation } from '../store/RecordingMeta.js';

/** A validated PBX signal (docs/pbx-protocol.md). `at` is kept as sent and as epoch milliseconds. */
export interface CallEvent {
  id: string;
  type: 'start' | 'answer' | 'end';
  callId: string;
  at: string;
  atMs: number;
  line?: string;
  caller?: string;
  callerPresentation?: CallerPresentation;
  serviceNumber?: string;
  agent?: { id: string; name: string };
}

export interface EventOutcome {
  status: 'accepted' | 'duplicate';
  recordingId: string | null;
}
