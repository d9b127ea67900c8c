import { connect } from 'node:net';
import type { ControlResponse } from '../control/protocol.js';

export class ControlCallError extends Error {
  constructor(readonly code: string, message: string) {
    super(message);
    this.name = 'ControlCallError';
  }
}

/** One request to the daemon over its Unix socket. */
export function callDaemon(socketPath: string, method: string, params: Record<string, unknown> = {}, session?: string): Promise<unknown> {
  return new Promise((resolve, reject) => {
    const sock = connect(socketPath);
    let buf = '';
    sock.setEncoding('utf8');
    sock.on('connect', () => sock.write(`${JSON.stringify({ id: 1, method, params, ...(session ? { session } : {}) })}\n`));
    sock.on('data', (chunk: string) => {
      buf += chunk;
      const nl = buf.indexOf('\n');
      if (nl < 0) return;
      sock.end();
      const res = JSON.parse(buf.slice(0, nl)) as ControlResponse;
      if (res.ok) resolve(res.result);
      else reject(new ControlCallError(res.error.code, res.error.message));
    });
    sock.on('close', () => {
      reject(new ControlCallError('no_answer', 'the daemon closed the connection without answering (see its log)'));
    });
    sock.on('error', (err: NodeJS.ErrnoException) => {
      reject(new ControlCallError('unreachable', `cannot reach the daemon at ${socketPath}: ${err.code ?? err.message} (is callrecd running? set --socket or CALLREC_SOCKET)`));
    });
  });
}
