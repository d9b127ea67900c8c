import express, { type Request, type Response, type Router } from 'express';
import { REQUEST } from '../../services/requests.js';
import type { Services } from '../../services/Services.js';
import type { SearchParams } from '../../services/CallService.js';
import type { AuditSearchParams } from '../../services/AuditService.js';
import type { NewUser, UserChange } from '../../services/UserService.js';
import { auth, authenticate, clientAddress, SESSION_COOKIE, sameOrigin } from './authenticate.js';
import { parseRange } from './byteRange.js';
import { body, HttpError, route } from './http.js';

const V = REQUEST;

export interface ApiOptions {
  tls: boolean;
  /** Seconds a session may live at most: the cookie's Max-Age. */
  sessionMaxS: () => number;
  status: () => Promise<unknown>;
}

/**
 * `/api/v1`: every route but `POST /sessions` needs a session; every route only calls a service (the
 * rules live there). docs/openapi.yaml describes exactly these routes, and a test holds the two together.
 */
export function apiRouter(s: Services, opts: ApiOptions): Router {
  const r = express.Router({ caseSensitive: true, strict: true });
  r.use(sameOrigin);
  r.use(express.json({ limit: '16kb', strict: true }));

  r.post('/sessions', route(async (req, res) => {
    requireJson(req);
    const b = body<{ username: string; password: string; client: 'browser' | 'api' }>(req, V.login);
    const login = await s.sessions.login(b.username, b.password, 'api', clientAddress(req));
    res.cookie(SESSION_COOKIE, login.token, { httpOnly: true, sameSite: 'strict', secure: opts.tls, path: '/api/v1', maxAge: opts.sessionMaxS() * 1000 });
    res.status(201).json({ user: login.user, csrfToken: login.csrfToken, expiresAt: login.expiresAt, ...(b.client === 'api' ? { token: login.token } : {}) });
  }));

  r.use(authenticate(s.sessions));

  r.get('/sessions/current', route(async (_req, res) => {
    const a = auth(res);
    res.json(await s.sessions.whoami(a.actor, a.session));
  }));
  r.delete('/sessions/current', route(async (_req, res) => {
    const a = auth(res);
    await s.sessions.logout(a.actor, a.token);
    res.clearCookie(SESSION_COOKIE, { httpOnly: true, sameSite: 'strict', secure: opts.tls, path: '/api/v1' });
    res.status(204).end();
  }));
  r.put('/account/password', route(async (req, res) => {
    requireJson(req);
    const b = body<{ currentPassword: string; password: string }>(req, V.change);
    await s.users.changeOwnPassword(auth(res).actor, b.currentPassword, b.password);
    res.status(204).end();
  }));

  r.post('/calls/search', route(async (req, res) => {
    requireJson(req);
    res.json(await s.calls.search(auth(res).actor, body<SearchParams>(req, V.search)));
  }));
  r.get('/calls/:id', route(async (req, res) => {
    // Search is a POST (numbers never sit in URLs): say so rather than look for a recording called "search".
    if (param(req, 'id') === 'search') {
      res.setHeader('Allow', 'POST');
      throw new HttpError(405, 'method_not_allowed', 'call search is POST /api/v1/calls/search with a JSON body');
    }
    res.json(await s.calls.show(auth(res).actor, param(req, 'id')));
  }));
  r.get('/calls/:id/audio', route(async (req, res) => sendAudio(s, req, res)));
  r.get('/calls/:id/export', route(async (req, res) => {
    // An export is a copy taken out, audited as such: a HEAD would do (and log) the work for nothing.
    if (req.method === 'HEAD') throw new HttpError(405, 'method_not_allowed', 'exports answer GET only');
    const format = req.query.format ?? 'wav';
    if (format !== 'wav' && format !== 'opus') throw new HttpError(400, 'bad_request', 'format: wav or opus');
    const id = param(req, 'id');
    const bytes = await s.calls.export(auth(res).actor, id, format);
    res.setHeader('Cache-Control', 'no-store');
    res.setHeader('Content-Disposition', `attachment; filename="${id}.${format === 'wav' ? 'wav' : 'opus'}"`);
    res.type(format === 'wav' ? 'audio/wav' : 'audio/ogg').send(bytes);
  }));
  r.post('/calls/:id/destroy', route(async (req, res) => {
    requireJson(req);
    res.json(await s.calls.destroy(auth(res).actor, param(req, 'id'), body<{ reason: string }>(req, V.destroy).reason));
  }));
  r.put('/calls/:id/training', route(async (req, res) => {
    requireJson(req);
    res.json(await s.calls.markTraining(auth(res).actor, param(req, 'id'), body<{ marked: boolean }>(req, V.training).marked));
  }));
  r.post('/calls/:id/verify', route(async (req, res) => {
    requireJson(req);
    body(req, V.empty);
    res.json(await s.calls.verify(auth(res).actor, param(req, 'id')));
  }));

  r.get('/users', route(async (_req, res) => {
    res.json({ users: await s.users.list(auth(res).actor) });
  }));
  r.post('/users', route(async (req, res) => {
    requireJson(req);
    res.status(201).json(await s.users.add(auth(res).actor, body<NewUser>(req, V.newUser)));
  }));
  r.patch('/users/:username', route(async (req, res) => {
    requireJson(req);
    res.json(await s.users.update(auth(res).actor, param(req, 'username'), body<UserChange>(req, V.userChange)));
  }));
  r.put('/users/:username/password', route(async (req, res) => {
    requireJson(req);
    await s.users.resetPassword(auth(res).actor, param(req, 'username'), body<{ password: string }>(req, V.reset).password);
    res.status(204).end();
  }));
  r.get('/roles', route(async (_req, res) => {
    res.json(s.roles(auth(res).actor));
  }));

  r.post('/audit/search', route(async (req, res) => {
    requireJson(req);
    res.json(await s.audit.search(auth(res).actor, body<AuditSearchParams>(req, V.audit)));
  }));
  r.post('/audit/verify', route(async (req, res) => {
    requireJson(req);
    body(req, V.empty);
    res.json(await s.audit.verify(auth(res).actor));
  }));

  r.get('/system/status', route(async (_req, res) => {
    res.json(await s.system.status(auth(res).actor));
  }));

  r.use((_req: Request, res: Response) => {
    res.status(404).json({ error: { code: 'not_found', message: 'no such endpoint' } });
  });
  return r;
}

/** A request with a body must say it is JSON: a form post (the classic cross-site trick) is refused. */
function requireJson(req: Request): void {
  const len = Number(req.get('content-length') ?? 0);
  if ((len > 0 || req.get('transfer-encoding')) && !req.is('application/json')) throw new HttpError(415, 'unsupported_media_type', 'request bodies are application/json');
}

function param(req: Request, name: string): string {
  const v = req.params[name];
  return typeof v === 'string' ? v : '';
}

/** Ogg Opus decrypted on the fly; one byte range (206) or the whole (200); a start past the end is 416. */
async function sendAudio(s: Services, req: Request, res: Response): Promise<void> {
  const audio = await s.calls.listen(auth(res).actor, param(req, 'id'));
  try {
    const L = audio.length;
    res.setHeader('Accept-Ranges', 'bytes');
    res.setHeader('Cache-Control', 'no-store');
    const range = parseRange(req.get('range'), L);
    if (range === 'unsatisfiable') {
      res.setHeader('Content-Range', `bytes */${L}`);
      res.status(416).json({ error: { code: 'range_not_satisfiable', message: `the audio has ${L} bytes` } });
      return;
    }
    const { start, end } = range ?? { start: 0, end: L - 1 };
    res.type('audio/ogg');
    if (range) {
      res.status(206);
      res.setHeader('Content-Range', `bytes ${start}-${end}/${L}`);
    }
    res.setHeader('Content-Length', String(Math.max(0, end - start + 1)));
    if (req.method === 'HEAD' || L === 0) {
      res.end();
      return;
    }
    res.flushHeaders();
    for await (const chunk of audio.range(start, end)) {
      if (res.destroyed) break;
      if (!res.write(chunk)) await new Promise((r) => res.once('drain', r));
    }
    res.end();
  } catch (err) {
    // Headers may be out already: a fault mid-stream can only cut the answer short.
    if (res.headersSent) {
      res.destroy(err as Error);
      return;
    }
    throw err;
  } finally {
    await audio.close();
  }
}
