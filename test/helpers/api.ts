import type { TestDaemon } from './testDaemon.js';
import { PASSWORD } from './people.js';

export interface ApiAnswer {
  status: number;
  headers: Headers;
  json: any;
  body: Buffer;
}

/** A real HTTP client for the admin listener (fetch), with the bearer token when given. */
export function apiClient(td: TestDaemon) {
  const base = `http://127.0.0.1:${td.daemon.adminAddress.port}`;
  return {
    base,
    async req(method: string, path: string, opts: { token?: string; body?: unknown; raw?: string | Buffer; headers?: Record<string, string> } = {}): Promise<ApiAnswer> {
      const headers: Record<string, string> = { ...(opts.headers ?? {}) };
      if (opts.token) headers.authorization = `Bearer ${opts.token}`;
      if (opts.body !== undefined && headers['content-type'] === undefined) headers['content-type'] = 'application/json';
      const res = await fetch(base + path, { method, headers, ...(opts.raw !== undefined ? { body: opts.raw } : opts.body !== undefined ? { body: JSON.stringify(opts.body) } : {}) });
      const body = Buffer.from(await res.arrayBuffer());
      let json: unknown = null;
      if ((res.headers.get('content-type') ?? '').includes('json') && body.length) json = JSON.parse(body.toString('utf8'));
      return { status: res.status, headers: res.headers, json, body };
    },
    /** Logs in as an API client; returns the bearer token. */
    async token(username: string, password = PASSWORD): Promise<string> {
      const r = await this.req('POST', '/api/v1/sessions', { body: { username, password, client: 'api' } });
      if (r.status !== 201) throw new Error(`login ${username}: ${r.status} ${JSON.stringify(r.json)}`);
      return r.json.token as string;
    },
  };
}
