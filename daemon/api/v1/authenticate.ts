import { createHash, timingSafeEqual } from 'node:crypto';
import type { NextFunction, Request, Response } from 'express';
import type { Actor } from '../../access/Actor.js';
import type { Session } from '../../access/Sessions.js';
import type { SessionService } from '../../services/SessionService.js';
import { HttpError, sendError } from './http.js';

export const SESSION_COOKIE = 'callrec_session';

/** What a request carries once authenticated. */
export interface Authenticated {
  actor: Actor;
  session: Session;
  token: string;
  byCookie: boolean;
}

export const auth = (res: Response): Authenticated => res.locals.auth as Authenticated;

/** The client's address as the audit keeps it (no proxy in front: the socket's peer is the client). */
export const clientAddress = (req: Request): string => req.socket.remoteAddress ?? 'unknown';

/**
 * A browser's cross-origin request is refused before anything else: its Origin (sent on every
 * cross-origin and every state-changing fetch) must be this server's own, and its Sec-Fetch-Site, when
 * sent, `same-origin` or `none` (typed or bookmarked). Requests without Origin
 * (curl, the CLI, a same-origin GET) pass here and meet the session and CSRF checks.
 */
export function sameOrigin(req: Request, res: Response, next: NextFunction): void {
  const origin = req.get('origin');
  const site = req.get('sec-fetch-site');
  const own = `${req.protocol}://${req.get('host') ?? ''}`;
  // same-site is not enough: another port of this host is another origin (and could be anyone's page).
  if ((origin !== undefined && origin !== own) || (site !== undefined && site !== 'same-origin' && site !== 'none')) {
    sendError(res, new HttpError(403, 'cross_origin', 'cross-site requests are refused'));
    return;
  }
  next();
}

/**
 * The session: `Authorization: Bearer <token>` (API clients) or the HttpOnly cookie (browsers). A
 * cookie is sent by the browser on its own, so with a cookie every state-changing request must also
 * echo the session's CSRF token in `X-CSRF-Token`, which another site cannot read.
 */
export function authenticate(sessions: SessionService) {
  return (req: Request, res: Response, next: NextFunction): void => {
    const bearer = /^Bearer +([A-Za-z0-9_-]{16,128})$/i.exec(req.get('authorization') ?? '')?.[1];
    const cookie = bearer === undefined ? readCookie(req, SESSION_COOKIE) : undefined;
    const token = bearer ?? cookie;
    sessions.resolve(token, 'api', clientAddress(req)).then(
      ({ actor, session }) => {
        const safe = req.method === 'GET' || req.method === 'HEAD';
        if (cookie !== undefined && !safe && !tokensEqual(req.get('x-csrf-token') ?? '', session.csrfToken)) {
          sendError(res, new HttpError(403, 'csrf', 'a state-changing request with a session cookie needs the X-CSRF-Token header (from the login answer or GET /api/v1/sessions/current)'));
          return;
        }
        res.locals.auth = { actor, session, token: token!, byCookie: cookie !== undefined } satisfies Authenticated;
        next();
      },
      (err: unknown) => {
        try {
          sendError(res, err);
        } catch (e) {
          next(e);
        }
      },
    );
  };
}

export function readCookie(req: Request, name: string): string | undefined {
  for (const part of (req.get('cookie') ?? '').split(';')) {
    const eq = part.indexOf('=');
    if (eq > 0 && part.slice(0, eq).trim() === name) return part.slice(eq + 1).trim() || undefined;
  }
  return undefined;
}

const tokensEqual = (a: string, b: string): boolean => {
  const h = (s: string): Buffer => createHash('sha256').update(s).digest();
  return timingSafeEqual(h(a), h(b));
};
