import pino, { type Logger } from 'pino';

/** Keys whose values are personal or secret: never written, whatever logs them. */
export const REDACT = [
  'caller',
  'callId',
  'serviceNumber',
  'agentId',
  '*.callId',
  '*.serviceNumber',
  '*.agentId',
  'callerNormalized',
  'agentName',
  'token',
  'authorization',
  '*.caller',
  '*.callerNormalized',
  '*.agentName',
  '*.token',
  '*.authorization',
];

/** pino JSON lines, to `fd` (stdout by default), for journald. */
export function createLogger(level: string, fd = 1): Logger {
  return pino({ level, redact: { paths: REDACT, censor: '[redacted]' }, base: { service: 'callrecd' } }, pino.destination({ fd, sync: false }));
}
