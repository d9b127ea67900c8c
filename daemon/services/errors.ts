/** Errors the services raise; their codes travel over the control socket and become CLI exit codes. */
export type ServiceErrorCode = 'not_found' | 'bad_request' | 'conflict' | 'integrity' | 'internal';

export class ServiceError extends Error {
  constructor(readonly code: ServiceErrorCode, message: string) {
    super(message);
    this.name = 'ServiceError';
  }
}
