import type { NextFunction, Request, RequestHandler, Response } from 'express';
import type { ValidateFunction } from 'ajv';
import { ServiceError, type ServiceErrorCode } from '../../services/errors.js';
import { checked } from '../../services/requests.js';

/** Stable error codes to HTTP statuses (docs/api.md lists them). */
const STATUS: Record<ServiceErrorCode, number> = {
  bad_request: 400,
  unauthenticated: 401,
  forbidden: 403,
  not_found: 404,
  conflict: 409,
  account_locked: 423,
  too_many_attempts: 429,
  integrity: 500,
  internal: 500,
  audit_unavailable: 503,
};

export class HttpError extends Error {
  constructor(readonly status: number, readonly code: string, message: string) {
    super(message);
  }
}

export function sendError(res: Response, err: unknown): void {
  if (err instanceof ServiceError) {
    if (err.retryAfterS !== undefined) res.setHeader('Retry-After', String(err.retryAfterS));
    res.status(STATUS[err.code]).json({ error: { code: err.code, message: err.message } });
    return;
  }
  if (err instanceof HttpError) {
    res.status(err.status).json({ error: { code: err.code, message: err.message } });
    return;
  }
  throw err;
}

/** An async route whose ServiceErrors become JSON errors; anything else goes to the 500 handler. */
export const route =
  (fn: (req: Request, res: Response) => Promise<void>): RequestHandler =>
  (req, res, next: NextFunction) => {
    fn(req, res).catch((err: unknown) => {
      try {
        sendError(res, err);
      } catch {
        next(err);
      }
    });
  };

/** The JSON body, checked against its documented schema (unknown fields, wrong types: 400 naming the field). */
export function body<T>(req: Request, validate: ValidateFunction): T {
  return checked<T>(validate, req.body ?? {});
}
