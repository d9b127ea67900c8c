import { fileURLToPath } from 'node:url';
import type { ErrorObject } from 'ajv';
import { compileSchemaFile } from '../config/jsonSchema.js';
import { parseRfc3339 } from '../time/rfc3339.js';
import type { CallEvent } from '../calls/CallEvent.js';

export type SignalErrorCode =
  | 'unauthorized'
  | 'body_too_large'
  | 'malformed_json'
  | 'missing_field'
  | 'invalid_type'
  | 'invalid_length'
  | 'invalid_value'
  | 'invalid_time'
  | 'unknown_line'
  | 'not_found';

export class SignalError extends Error {
  constructor(readonly status: number, readonly code: SignalErrorCode, message: string, readonly field?: string) {
    super(message);
    this.name = 'SignalError';
  }

  toJSON(): { error: { code: SignalErrorCode; message: string; field?: string } } {
    return { error: { code: this.code, message: this.message, ...(this.field ? { field: this.field } : {}) } };
  }
}

const schemaFile = fileURLToPath(new URL('../../../docs/schemas/pbx-event.schema.json', import.meta.url));
const validate = compileSchemaFile(schemaFile);

/** Checks a parsed body against the PBX signal schema (the documented one) and `at` against the calendar. */
export function validateEvent(body: unknown, hasLine: (id: string) => boolean): CallEvent {
  if (typeof body !== 'object' || body === null || Array.isArray(body)) throw new SignalError(400, 'invalid_type', 'the body must be a JSON object');
  if (!validate(body)) throw fromAjv(validate.errors![0]!);
  const ev = body as CallEvent;
  const atMs = parseRfc3339(ev.at);
  if (atMs === null) throw new SignalError(400, 'invalid_time', 'at: not a real time', 'at');
  if (ev.type === 'start' && !hasLine(ev.line!)) throw new SignalError(400, 'unknown_line', `line is not configured`, 'line');
  return {
    id: ev.id,
    type: ev.type,
    callId: ev.callId,
    at: ev.at,
    atMs,
    ...(ev.type === 'start' ? { line: ev.line!, caller: ev.caller!, callerPresentation: ev.callerPresentation!, serviceNumber: ev.serviceNumber! } : {}),
    ...(ev.type === 'answer' ? { agent: { id: ev.agent!.id, name: ev.agent!.name } } : {}),
  };
}

function fromAjv(e: ErrorObject): SignalError {
  const path = e.instancePath.split('/').slice(1).join('.');
  switch (e.keyword) {
    case 'required': {
      const field = [path, (e.params as { missingProperty: string }).missingProperty].filter(Boolean).join('.');
      return new SignalError(400, 'missing_field', `${field}: is required`, field);
    }
    case 'type':
      return new SignalError(400, 'invalid_type', `${path}: must be ${(e.params as { type: string }).type}`, path);
    case 'minLength':
    case 'maxLength':
      return new SignalError(400, 'invalid_length', `${path}: ${e.message}`, path);
    case 'pattern':
      return new SignalError(400, 'invalid_time', `${path}: must be an RFC 3339 time with offset or Z`, path);
    default:
      return new SignalError(400, 'invalid_value', `${path}: ${e.message}`, path);
  }
}
