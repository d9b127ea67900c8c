import type { Server } from 'node:http';
import express, { type Request, type Response } from 'express';
import helmet from 'helmet';
import type { Logger } from 'pino';
import type { Alarms } from '../ops/Alarms.js';
import type { HealthMonitor } from '../ops/HealthMonitor.js';
import type { Metrics } from '../ops/Metrics.js';
import { requestLog } from '../ops/requestLog.js';
import { bearerMatches, closeServer, listen } from '../ops/httpServer.js';

export interface AdminListenerOptions {
  host: string;
  port: number;
  metricsToken?: string | undefined;
}

/**
 * The admin listener: for now `GET /health` and `GET /metrics`, which need no session and hold nothing
 * personal (`/metrics` takes a bearer scrape token when one is configured). Everything else is 404.
 */
export class AdminListener {
  private server: Server | null = null;

  constructor(private readonly opts: AdminListenerOptions, private readonly health: HealthMonitor, private readonly alarms: Alarms, private readonly metrics: Metrics, private readonly log: Logger) {}

  async start(): Promise<{ host: string; port: number }> {
    const app = express();
    app.disable('x-powered-by');
    app.set('case sensitive routing', true);
    app.set('strict routing', true);
    // Plain HTTP on the local network until TLS is configured: HSTS and upgrade-insecure-requests would break it.
    app.use(helmet({ strictTransportSecurity: false, contentSecurityPolicy: { directives: { defaultSrc: ["'none'"], upgradeInsecureRequests: null } } }));
    app.use(requestLog(this.log, 'admin', (status) => this.metrics.httpRequests.inc({ listener: 'admin', status: String(status) })));
    app.get('/health', (_req, res, next) => {
      this.health.check().then((h) => {
        res.status(h.status === 'failing' ? 503 : 200).json({ ...h, alarms: this.alarms.list() });
      }, next);
    });
    app.get('/metrics', (req, res, next) => {
      if (this.opts.metricsToken && !bearerMatches(req, this.opts.metricsToken)) {
        res.status(401).json({ error: { code: 'unauthorized', message: 'a valid scrape token is required' } });
        return;
      }
      this.metrics.registry.metrics().then((text) => {
        res.type(this.metrics.registry.contentType).send(text);
      }, next);
    });
    app.use((_req: Request, res: Response) => {
      res.status(404).json({ error: { code: 'not_found', message: 'no such endpoint' } });
    });
    app.use((err: Error, _req: Request, res: Response, _next: unknown) => {
      this.log.error({ err: err.message }, 'admin request failed');
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
}

