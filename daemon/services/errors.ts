/**
 * Errors the services raise. Their codes are stable: they travel over the control socket (and become CLI
 * exit codes) and in API error bodies (and become HTTP statuses).
 */
export type ServiceErrorCode =
  | 'not_found'
  | 'bad_request'
  | 'conflict'
  | 'integrity'
  | 'internal'
  /** No valid session: log in (HTTP 401, CLI exit 3). */
  | 'unauthenticated'
  /** Logged in, but no role allows it (HTTP 403). */
  | 'forbidden'
  | 'account_locked'
  | 'too_many_attempts'
  /** The audit trail could not record the action, so it was not done. */
  | 'audit_unavailable';

export class ServiceError extends Error {
  constructor(readonly code: ServiceErrorCode, message: string, readonly retryAfterS?: number) {
    super(message);
    this.name = 'ServiceError';
  }
}
