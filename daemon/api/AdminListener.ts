import type { Server } from 'node:http';
import express, { type Request, type Response } from 'express';
import helmet from 'helmet';
import type { Logger } from 'pino';
import type { Alarms } from '../ops/Alarms.js';
import type { HealthMonitor } from '../ops/HealthMonitor.js';
import type { Metrics } from '../ops/Metrics.js';
import { requestLog } from '../ops/requestLog.js';
import { bearerMatches, closeServer, listen } from '../ops/httpServer.js';
import type { Services } from '../services/Services.js';
import { apiRouter, type ApiOptions } from './v1/routes.js';
import { knownHost } from './knownHost.js';

export interface AdminListenerOptions {
  host: string;
  port: number;
  metricsToken?: string | undefined;
  /** PEM certificate chain and key files: HTTPS (and HSTS, Secure cookies) when both are set. */
  tls?: { certFile: string; keyFile: string } | undefined;
  /** DNS names the listener answers to, besides IP literals, localhost and this machine's name. */
  hostNames?: string[];
}

/**
 * The admin listener: `GET /health` and `GET /metrics`, which need no session and hold nothing personal
 * (`/metrics` takes a bearer scrape token when one is configured), and the API under `/api/v1`, where
 * everything but the login needs a session. Everything else is 404.
 */
export class AdminListener {
  private server: Server | null = null;
  private table: Array<{ method: string; path: string }> = [];

  constructor(private readonly opts: AdminListenerOptions, private readonly health: HealthMonitor, private readonly alarms: Alarms, private readonly metrics: Metrics, private readonly services: Services, private readonly api: Omit<ApiOptions, 'tls'>, private readonly log: Logger) {}

  async start(): Promise<{ host: string; port: number }> {
    const app = express();
    app.disable('x-powered-by');
    app.set('case sensitive routing', true);
    app.set('strict routing', true);
    const tls = this.opts.tls !== undefined;
    // Plain HTTP on the local network until TLS is configured: HSTS and upgrade-insecure-requests would break it.
    app.use(
      helmet({
        strictTransportSecurity: tls ? { maxAge: 31536000 } : false,
        contentSecurityPolicy: { useDefaults: false, directives: { defaultSrc: ["'none'"], mediaSrc: ["'self'"], frameAncestors: ["'none'"], baseUri: ["'none'"], formAction: ["'none'"], ...(tls ? { upgradeInsecureRequests: [] } : {}) } },
        referrerPolicy: { policy: 'no-referrer' },
      }),
    );
    app.use(knownHost([...(this.opts.hostNames ?? []), this.opts.host]));
    app.use(requestLog(this.log, 'admin', (status) => this.metrics.httpRequests.inc({ listener: 'admin', status: String(status) })));
    app.get('/health', (_req, res, next) => {
      this.health.check().then((h) => {
        res.status(h.status === 'failing' ? 503 : 200).json({ ...h, alarms: this.alarms.list() });
      }, next);
    });
    app.get('/metrics', (req, res, next) => {
      if (this.opts.metricsToken && !bearerMatches(req, this.opts.metricsToken)) {
        res.status(401).json({ error: { code: 'unauthenticated', message: 'a valid scrape token is required' } });
        return;
      }
      this.metrics.registry.metrics().then((text) => {
        res.type(this.metrics.registry.contentType).send(text);
      }, next);
    });
    const api = apiRouter(this.services, { ...this.api, tls });
    app.use('/api/v1', api);
    this.table = [...routesOf(app.router, ''), ...routesOf(api, '/api/v1')];
    app.use((_req: Request, res: Response) => {
      res.status(404).json({ error: { code: 'not_found', message: 'no such endpoint' } });
    });
    app.use((err: Error & { type?: string; status?: number }, _req: Request, res: Response, _next: unknown) => {
      // body-parser's own faults: a client's mistake, not ours.
      if (err.type === 'entity.too.large') return void res.status(413).json({ error: { code: 'payload_too_large', message: 'request bodies are at most 16 KiB' } });
      if (err.type === 'entity.parse.failed') return void res.status(400).json({ error: { code: 'bad_json', message: 'the body is not valid JSON' } });
      if (err.status === 415) return void res.status(415).json({ error: { code: 'unsupported_media_type', message: err.message } });
      if (err.status !== undefined && err.status >= 400 && err.status < 500) return void res.status(err.status).json({ error: { code: 'bad_request', message: err.message } });
      this.log.error({ err: err.message }, 'admin request failed');
      res.status(500).json({ error: { code: 'internal', message: 'internal error' } });
    });
    const { server, address } = await listen(app, this.opts.host, this.opts.port, this.opts.tls);
    this.server = server;
    return address;
  }

  /** Every route the listener serves (method and path pattern): tests hold it against docs/openapi.yaml and the 401 rule. */
  routes(): Array<{ method: string; path: string }> {
    return [...this.table];
  }

  async stop(): Promise<void> {
    const server = this.server;
    this.server = null;
    await closeServer(server);
  }
}


interface RouteLayer {
  route?: { path: string; methods: Record<string, boolean> };
}

function routesOf(router: unknown, prefix: string): Array<{ method: string; path: string }> {
  const out: Array<{ method: string; path: string }> = [];
  for (const layer of (router as { stack: RouteLayer[] }).stack) {
    if (!layer.route) continue;
    for (const [m, on] of Object.entries(layer.route.methods)) if (on && m !== '_all') out.push({ method: m.toUpperCase(), path: prefix + layer.route.path });
  }
  return out;
}
