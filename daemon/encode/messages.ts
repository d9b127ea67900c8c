import type { LineRingHandle } from '../ring/LineRing.js';

/** What the main thread tells an encoder worker. */
export type ToWorker =
  | { type: 'start'; job: EncodeJob }
  | { type: 'stop'; id: string; endFrame: number; force?: boolean }
  | { type: 'shutdown' };

export interface EncodeJob {
  id: string;
  path: string;
  ring: LineRingHandle;
  sampleRate: number;
  startFrame: number;
  /** Bits per second per channel. */
  bitrate: number;
  complexity: number;
  pageFlushMs: number;
  /** Audio younger than this stays unwritten, so an end signal up to this late still cuts exactly. */
  holdMs: number;
  serial: number;
  /** The recording's data key: the file is sealed under it. Without one the file is plain Ogg (benchmarks, tests). */
  key?: Uint8Array;
}

export interface EncodeResult {
  id: string;
  /** Frames of line audio in the file (end - start on the sample clock). */
  frames: number;
  audioBytes: number;
  audioSha256: string;
  /** The file as stored: equal to the audio figures when it is not sealed. */
  storedBytes: number;
  storedSha256: string;
  finalGranule: string;
  /** Stretches the worker could not read in time and wrote as silence: [startFrame, frames]. */
  overruns: Array<[number, number]>;
  /** Per channel, the loudest 20 ms frame's RMS in dBFS (-120 for digital silence): a dead line shows here. */
  peakDbfs: number[];
  /** The end came later than `holdMs` after audio beyond it was written: the file runs on to there. */
  clampedEnd: boolean;
}

/** Once a second from each worker: how far behind capture it is, and what its pumps cost. */
export interface WorkerStats {
  sessions: number;
  /** The largest backlog over its recordings, in seconds of audio not yet encoded. */
  lagS: number;
  /** Wall time of each pump of all its recordings over the last second, in seconds. */
  pumpS: number[];
  /** Sample frames encoded since the last report. */
  framesEncoded: number;
}

/** What an encoder worker answers. */
export type FromWorker =
  | { type: 'stats'; stats: WorkerStats }
  | { type: 'done'; result: EncodeResult }
  | { type: 'failed'; id: string; message: string };
