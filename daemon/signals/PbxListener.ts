import type { Server } from 'node:http';
import express, { type NextFunction, type Request, type Response } from 'express';
import type { Logger } from 'pino';
import type { CallManager } from '../calls/CallManager.js';
import { SignalError, validateEvent } from './validateEvent.js';
import { requestLog } from '../ops/requestLog.js';
import { bearerMatches, closeServer, listen } from '../ops/httpServer.js';

export const MAX_BODY_BYTES = 16 * 1024;

export interface PbxListenerOptions {
  host: string;
  port: number;
  token: string;
  hasLine: (id: string) => boolean;
  /** Told of every answered request: the event type (or `unknown`) and the outcome or error code. */
  onOutcome?: (type: string, outcome: string) => void;
  onHttpStatus?: (status: number) => void;
}

/**
 * The PBX's door (docs/pbx-protocol.md): POST /pbx/v1/events with a bearer token. Checks run in the
 * documented order: token, size, JSON, fields; then the call manager answers.
 */
export class PbxListener {
  private server: Server | null = null;

  constructor(private readonly opts: PbxListenerOptions, private readonly calls: CallManager, private readonly log: Logger) {}

  async start(): Promise<{ host: string; port: number }> {
    const app = express();
    app.disable('x-powered-by');
    app.set('etag', false);
    // Exactly the documented path: no trailing slash, no other case.
    app.set('case sensitive routing', true);
    app.set('strict routing', true);
    app.use(requestLog(this.log, 'pbx', this.opts.onHttpStatus));
    app.post('/pbx/v1/events', (req, res, next) => this.authorize(req, next), express.raw({ type: () => true, limit: MAX_BODY_BYTES }), (req, res, next) => {
      this.accept(req, res).catch(next);
    });
    app.use((_req: Request, res: Response) => {
      send(res, new SignalError(404, 'not_found', 'no such endpoint: the PBX posts to /pbx/v1/events'));
    });
    app.use((err: unknown, _req: Request, res: Response, _next: NextFunction) => {
      if (err instanceof SignalError) {
        if (!(err as { counted?: boolean }).counted) this.opts.onOutcome?.('unknown', err.code);
        return send(res, err);
      }
      const e = err as { type?: string; status?: number };
      if (e.type === 'entity.too.large' || e.status === 413) return send(res, new SignalError(413, 'body_too_large', `the body is over ${MAX_BODY_BYTES} bytes`));
      if (e.status && e.status >= 400 && e.status < 500) return send(res, new SignalError(400, 'malformed_json', 'the body could not be read'));
      ((res.locals.log as Logger | undefined) ?? this.log).error({ err: (err as Error).message }, 'PBX signal failed');
      res.status(500).json({ error: { code: 'internal', message: 'internal error' } });
    });
    const { server, address } = await listen(app, this.opts.host, this.opts.port);
    this.server = server;
    return address;
  }

  async stop(): Promise<void> {
    const server = this.server;
    this.server = null;
    await closeServer(server);
  }

  private authorize(req: Request, next: NextFunction): void {
    if (!bearerMatches(req, this.opts.token)) return next(new SignalError(401, 'unauthorized', 'a valid bearer token is required'));
    next();
  }

  private async accept(req: Request, res: Response): Promise<void> {
    const raw = Buffer.isBuffer(req.body) ? req.body : Buffer.alloc(0);
    let body: unknown;
    try {
      body = JSON.parse(raw.toString('utf8'));
    } catch {
      throw new SignalError(400, 'malformed_json', 'the body is not valid JSON');
    }
    let ev;
    try {
      ev = validateEvent(body, this.opts.hasLine);
    } catch (err) {
      if (err instanceof SignalError) this.opts.onOutcome?.(typeOf(body), err.code);
      throw Object.assign(err as Error, { counted: true });
    }
    const outcome = await this.calls.handle(ev);
    this.opts.onOutcome?.(ev.type, outcome.status);
    if (outcome.status === 'duplicate') res.status(200).json({ status: 'duplicate' });
    else res.status(202).json({ status: 'accepted', recordingId: outcome.recordingId });
  }
}


function send(res: Response, err: SignalError): void {
  res.status(err.status).json(err.toJSON());
}

function typeOf(body: unknown): string {
  const t = (body as { type?: unknown } | null)?.type;
  return t === 'start' || t === 'answer' || t === 'end' ? t : 'unknown';
}
