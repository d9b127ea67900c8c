import { randomUUID } from 'node:crypto';
import type { NextFunction, Request, Response } from 'express';
import type { Logger } from 'pino';

/**
 * One log line per request, with a request id (echoed as X-Request-Id) that the request's other log
 * lines carry too. Only method, path, status and time: never bodies, queries or headers.
 */
export function requestLog(log: Logger, listener: string, onDone?: (status: number) => void) {
  return (req: Request, res: Response, next: NextFunction): void => {
    const id = randomUUID();
    const started = performance.now();
    res.locals.log = log.child({ reqId: id });
    res.setHeader('X-Request-Id', id);
    res.on('finish', () => {
      onDone?.(res.statusCode);
      (res.locals.log as Logger).info({ listener, method: req.method, path: req.path, status: res.statusCode, ms: Math.round(performance.now() - started) }, 'request');
    });
    next();
  };
}
