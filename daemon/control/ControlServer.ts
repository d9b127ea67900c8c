import { chmodSync, mkdirSync, rmSync } from 'node:fs';
import { createServer, type Server, type Socket } from 'node:net';
import { dirname } from 'node:path';
import type { Logger } from 'pino';
import { peerCred, type PeerCred } from '../../native/peerCred.js';
import { ServiceError } from '../services/errors.js';
import type { ControlRequest, ControlResponse } from './protocol.js';

/** Who sent a request: the socket peer's credentials (SO_PEERCRED) and the session token it presented. */
export interface ControlContext {
  peer: PeerCred | null;
  session: string | undefined;
}

export type ControlHandler = (params: Record<string, unknown>, ctx: ControlContext) => Promise<unknown>;

const MAX_REQUEST_BYTES = 64 * 1024;

/**
 * The local Unix socket the `callrec` CLI talks to. Its file mode (0660, in a 0750 directory) keeps
 * strangers off the box's socket; past that, every request is a person's: it carries a session token
 * from `callrec login`, and the peer's uid (read with SO_PEERCRED) goes into the audit trail.
 */
export class ControlServer {
  private server: Server | null = null;

  constructor(private readonly path: string, private readonly methods: Record<string, ControlHandler>, private readonly log: Logger) {}

  async start(): Promise<void> {
    mkdirSync(dirname(this.path), { recursive: true, mode: 0o750 });
    rmSync(this.path, { force: true });
    const server = createServer((sock) => this.serve(sock));
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(this.path, () => resolve());
    });
    chmodSync(this.path, 0o660);
    this.server = server;
  }

  async stop(): Promise<void> {
    const server = this.server;
    this.server = null;
    if (server) await new Promise<void>((resolve) => server.close(() => resolve()));
    rmSync(this.path, { force: true });
  }

  private serve(sock: Socket): void {
    const peer = peerCred(sock);
    let buf = '';
    sock.setEncoding('utf8');
    sock.on('error', () => sock.destroy());
    sock.on('data', (chunk: string) => {
      buf += chunk;
      if (Buffer.byteLength(buf) > MAX_REQUEST_BYTES) {
        buf = '';
        sock.end(`${JSON.stringify({ id: 0, ok: false, error: { code: 'bad_request', message: `request over ${MAX_REQUEST_BYTES} bytes` } })}\n`);
        return;
      }
      let nl: number;
      while ((nl = buf.indexOf('\n')) >= 0) {
        const line = buf.slice(0, nl);
        buf = buf.slice(nl + 1);
        void this.answer(line, peer).then((res) => {
          if (!sock.destroyed) sock.write(`${JSON.stringify(res)}\n`);
        });
      }
    });
  }

  private async answer(line: string, peer: PeerCred | null): Promise<ControlResponse> {
    let req: ControlRequest;
    try {
      req = JSON.parse(line) as ControlRequest;
    } catch {
      return { id: 0, ok: false, error: { code: 'bad_request', message: 'not JSON' } };
    }
    if (typeof req !== 'object' || req === null || Array.isArray(req) || typeof req.method !== 'string') {
      return { id: 0, ok: false, error: { code: 'bad_request', message: 'a request is {"id", "method", "params"}' } };
    }
    if (typeof req.params !== 'object' || req.params === null || Array.isArray(req.params)) req.params = {};
    const method = Object.hasOwn(this.methods, req.method) ? this.methods[req.method] : undefined;
    if (!method) return { id: req.id, ok: false, error: { code: 'bad_request', message: `unknown method ${String(req.method)}` } };
    try {
      return { id: req.id, ok: true, result: await method(req.params ?? {}, { peer, session: typeof req.session === 'string' ? req.session : undefined }) };
    } catch (err) {
      if (err instanceof ServiceError) return { id: req.id, ok: false, error: { code: err.code, message: err.message } };
      this.log.error({ method: req.method, err: (err as Error).message }, 'control request failed');
      return { id: req.id, ok: false, error: { code: 'internal', message: 'internal error (see the daemon log)' } };
    }
  }
}
