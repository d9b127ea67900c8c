import { createHash, timingSafeEqual } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { createServer as createHttpServer, type Server } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import type { Express, Request } from 'express';

/** Listens on host:port (0: any free port), over TLS when given a certificate, and says where it ended up. */
export async function listen(app: Express, host: string, port: number, tls?: { certFile: string; keyFile: string }): Promise<{ server: Server; address: { host: string; port: number } }> {
  const server: Server = tls ? createHttpsServer({ cert: readFileSync(tls.certFile), key: readFileSync(tls.keyFile), minVersion: 'TLSv1.2' }, app) : createHttpServer(app);
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => resolve());
  });
  const addr = server.address();
  return { server, address: { host, port: typeof addr === 'object' && addr ? addr.port : port } };
}

/** Stops listening and ends every open connection (keep-alive ones too), so shutdown never waits on a client. */
export async function closeServer(server: Server | null): Promise<void> {
  if (!server) return;
  await new Promise<void>((resolve) => {
    server.close(() => resolve());
    server.closeAllConnections();
  });
}

/** Whether the request carries `Authorization: Bearer <token>` (scheme case-insensitive, RFC 7235), compared in constant time. */
export function bearerMatches(req: Request, token: string): boolean {
  const m = /^Bearer +(.+)$/i.exec(req.get('authorization') ?? '');
  const h = (s: string): Buffer => createHash('sha256').update(s).digest();
  return m !== null && timingSafeEqual(h(m[1]!), h(token));
}
