/**
 * Epoch ms of an RFC 3339 time with an offset or Z, or null when it is not one or a field is out of range
 * (month 13, 30 February, 25:00). A leap second (:60) is taken only at 23:59 and counted as :59.
 */
export function parseRfc3339(s: string): number | null {
  const m = /^(\d{4})-(\d{2})-(\d{2})[Tt](\d{2}):(\d{2}):(\d{2})(\.\d+)?([Zz]|([+-])(\d{2}):(\d{2}))$/.exec(s);
  if (!m) return null;
  const [y, mo, d, h, mi, se] = [m[1], m[2], m[3], m[4], m[5], m[6]].map(Number) as [number, number, number, number, number, number];
  if (mo < 1 || mo > 12 || d < 1 || d > daysInMonth(y, mo) || h > 23 || mi > 59 || se > 60) return null;
  if (se === 60 && (h !== 23 || mi !== 59)) return null;
  if (m[9] && (Number(m[10]) > 23 || Number(m[11]) > 59)) return null;
  const frac = m[7] ? Number((m[7].slice(1) + '00').slice(0, 3)) : 0;
  const offset = m[9] ? (m[9] === '-' ? -1 : 1) * (Number(m[10]) * 60 + Number(m[11])) : 0;
  return utc(y, mo, d, h, mi, Math.min(se, 59)) + frac - offset * 60_000;
}

/** Epoch ms of a calendar date `YYYY-MM-DD` at midnight UTC, or null. */
export function parseDate(s: string): number | null {
  const m = /^(\d{4})-(\d{2})-(\d{2})$/.exec(s);
  if (!m) return null;
  const [y, mo, d] = [Number(m[1]), Number(m[2]), Number(m[3])];
  if (mo < 1 || mo > 12 || d < 1 || d > daysInMonth(y, mo)) return null;
  return utc(y, mo, d, 0, 0, 0);
}

function daysInMonth(y: number, mo: number): number {
  return [31, (y % 4 === 0 && y % 100 !== 0) || y % 400 === 0 ? 29 : 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31][mo - 1]!;
}

/** Date.UTC reads years 0-99 as 1900-1999; setUTCFullYear does not. */
function utc(y: number, mo: number, d: number, h: number, mi: number, s: number): number {
  const date = new Date(0);
  date.setUTCFullYear(y, mo - 1, d);
  date.setUTCHours(h, mi, s, 0);
  return date.getTime();
}

const MIN = utc(0, 1, 1, 0, 0, 0);
const MAX = utc(9999, 12, 31, 23, 59, 59) + 999;

/** The fixed-width UTC form stored and indexed (`2026-12-03T07:15:02.120Z`), kept within years 0000-9999. */
export function toUtcString(ms: number): string {
  return new Date(Math.min(MAX, Math.max(MIN, ms))).toISOString();
}
