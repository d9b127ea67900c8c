import { parsePhoneNumberFromString, type CountryCode } from 'libphonenumber-js';
import type { CallerClass, CallerPresentation } from '../store/RecordingMeta.js';

const ANONYMOUS = new Set(['', 'anonymous', 'unknown', 'restricted', 'private', 'unavailable']);

/**
 * What a caller string is: a number (with its E.164 form), anonymous (empty, a placeholder word, or
 * withheld and absent), or something else the PBX sent (a feature code such as *97).
 */
export function classifyCaller(caller: string, presentation: CallerPresentation, region: string): { callerNormalized: string | null; callerClass: CallerClass } {
  const trimmed = caller.trim();
  if (ANONYMOUS.has(trimmed.toLowerCase())) return { callerNormalized: null, callerClass: 'anonymous' };
  const e164 = normalizeNumber(trimmed, region);
  if (e164) return { callerNormalized: e164, callerClass: 'number' };
  return { callerNormalized: null, callerClass: presentation !== 'allowed' && trimmed === '' ? 'anonymous' : 'unparsable' };
}

/** The E.164 form of a written number (any spacing, national or international), or null. */
export function normalizeNumber(written: string, region: string): string | null {
  if (!/^[+(]?[0-9][0-9 ()./-]*$/.test(written.trim())) return null;
  const parsed = parsePhoneNumberFromString(written, region as CountryCode);
  return parsed && parsed.isPossible() ? parsed.number : null;
}
