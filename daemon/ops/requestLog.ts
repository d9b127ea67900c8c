import { randomUUID } from 'node:crypto';
import type { NextFunction, Request, Response } from 'express';
import type { Logger } from 'pino';

/**
 * One log line per request, with a request id (echoed as X-Request-Id) that the request's other log
 * lines carry too. Only method, route, status and time: never bodies, queries or headers, and not the
 * path as sent either (a mistyped URL can hold a caller's number or a password): the route it matched
 * (`/api/v1/calls/:id`), or "(no route)".
 */
export function requestLog(log: Logger, listener: string, onDone?: (status: number) => void) {
  return (req: Request, res: Response, next: NextFunction): void => {
    const id = randomUUID();
    const started = performance.now();
    res.locals.log = log.child({ reqId: id });
    res.setHeader('X-Request-Id', id);
    res.on('finish', () => {
      onDone?.(res.statusCode);
      (res.locals.log as Logger).info({ listener, method: req.method, route: routeOf(req), status: res.statusCode, ms: Math.round(performance.now() - started) }, 'request');
    });
    next();
  };
}

function routeOf(req: Request): string {
  const r = req.route as { path?: unknown } | undefined;
  return r && typeof r.path === 'string' ? `${req.baseUrl ?? ''}${r.path}` : '(no route)';
}
