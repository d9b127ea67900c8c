import { parentPort } from 'node:worker_threads';
import { EncodeSession } from './EncodeSession.js';
import type { FromWorker, ToWorker } from './messages.js';

/** An encoder worker: owns some recordings and pumps each every 20 ms, off the main thread. */
const port = parentPort!;
const sessions = new Map<string, EncodeSession>();
const send = (msg: FromWorker): void => port.postMessage(msg);

let pumpTimes: number[] = [];
/** Frames encoded by sessions that have finished since the last report. */
let finishedFrames = 0;
const reported = new Map<string, number>();

function pumpAll(): void {
  const t0 = performance.now();
  for (const [id, session] of sessions) {
    try {
      const result = session.pump();
      if (result) {
        finishedFrames += session.framesEncoded - (reported.get(id) ?? 0);
        reported.delete(id);
        sessions.delete(id);
        send({ type: 'done', result });
      }
    } catch (err) {
      sessions.delete(id);
      send({ type: 'failed', id, message: (err as Error).message });
    }
  }
  if (sessions.size > 0) pumpTimes.push((performance.now() - t0) / 1000);
}

const statsTimer = setInterval(() => {
  let lagS = 0;
  let framesEncoded = finishedFrames;
  for (const [id, s] of sessions) {
    lagS = Math.max(lagS, s.lagS);
    framesEncoded += s.framesEncoded - (reported.get(id) ?? 0);
    reported.set(id, s.framesEncoded);
  }
  finishedFrames = 0;
  send({ type: 'stats', stats: { sessions: sessions.size, lagS, pumpS: pumpTimes, framesEncoded } });
  pumpTimes = [];
}, 1000);

const timer = setInterval(pumpAll, 20);

port.on('message', (msg: ToWorker) => {
  switch (msg.type) {
    case 'start':
      try {
        sessions.set(msg.job.id, new EncodeSession(msg.job));
      } catch (err) {
        send({ type: 'failed', id: msg.job.id, message: (err as Error).message });
      }
      break;
    case 'stop':
      sessions.get(msg.id)?.stop(msg.endFrame, msg.force);
      pumpAll();
      break;
    case 'shutdown':
      clearInterval(timer);
      clearInterval(statsTimer);
      port.close();
      break;
  }
});
