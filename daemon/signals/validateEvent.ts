import { fileURLToPath } from 'node:url';
import type { ErrorObject } from 'ajv';
import { compileSchemaFile } from '../config/jsonSchema.js';
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

/** Epoch ms of an RFC 3339 time, or null when a field is out of range (month 13, 30 February, 25:00). */
export function parseRfc3339(s: string): number | null {
  const m = /^(\d{4})-(\d{2})-(\d{2})[Tt](\d{2}):(\d{2}):(\d{2})(\.\d+)?([Zz]|([+-])(\d{2}):(\d{2}))$/.exec(s);
  if (!m) return null;
  const [y, mo, d, h, mi, se] = [m[1], m[2], m[3], m[4], m[5], m[6]].map(Number) as [number, number, number, number, number, number];
  const daysInMonth = new Date(Date.UTC(y, mo, 0)).getUTCDate();
  if (mo < 1 || mo > 12 || d < 1 || d > daysInMonth || h > 23 || mi > 59 || se > 60) return null;
  if (m[9] && (Number(m[10]) > 23 || Number(m[11]) > 59)) return null;
  const frac = m[7] ? Number((m[7].slice(1) + '00').slice(0, 3)) : 0;
  const offset = m[9] ? (m[9] === '-' ? -1 : 1) * (Number(m[10]) * 60 + Number(m[11])) : 0;
  return Date.UTC(y, mo - 1, d, h, mi, Math.min(se, 59)) + frac - offset * 60_000;
}
