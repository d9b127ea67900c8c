import type { IndexPosition } from '../store/RecordingStore.js';
import { ServiceError } from './errors.js';

/**
 * A search cursor: where the previous page stopped, opaque to clients (base64url JSON). It carries a
 * position only, never a filter or a scope: those are applied afresh on every page, so a forged or
 * edited cursor moves through the same results and reaches nothing more.
 */
export type Cursor = { phase: 'live'; at: IndexPosition } | { phase: 'destroyed'; afterId: string };

export const encodeCursor = (c: Cursor): string => Buffer.from(JSON.stringify(c)).toString('base64url');

export function decodeCursor(s: string): Cursor {
  let c: unknown;
  try {
    c = JSON.parse(Buffer.from(s, 'base64url').toString('utf8'));
  } catch {
    throw new ServiceError('bad_request', 'cursor: not one this server gave out');
  }
  const o = c as Record<string, unknown>;
  const at = o?.at as Record<string, unknown> | undefined;
  if (o?.phase === 'live' && typeof at?.startedAt === 'string' && typeof at.id === 'string') return { phase: 'live', at: { startedAt: at.startedAt, id: at.id } };
  if (o?.phase === 'destroyed' && typeof o.afterId === 'string') return { phase: 'destroyed', afterId: o.afterId };
  throw new ServiceError('bad_request', 'cursor: not one this server gave out');
}
