/**
 * One `Range: bytes=...` over a body of `length` bytes (RFC 9110 14.1.2): `a-b`, `a-` and the suffix
 * `-n`. Returns the inclusive range, 'unsatisfiable' (416) when it starts at or past the end, or null to
 * answer 200 with the whole body (no header, another unit, several ranges, or a malformed one, all of
 * which a server may ignore).
 */
export function parseRange(header: string | undefined, length: number): { start: number; end: number } | 'unsatisfiable' | null {
  if (header === undefined) return null;
  const m = /^bytes=(\d*)-(\d*)$/.exec(header.trim());
  if (!m || (m[1] === '' && m[2] === '')) return null;
  if (m[1] === '') {
    const n = Number(m[2]);
    if (n === 0) return 'unsatisfiable';
    return length === 0 ? 'unsatisfiable' : { start: Math.max(0, length - n), end: length - 1 };
  }
  const start = Number(m[1]);
  const end = m[2] === '' ? length - 1 : Math.min(Number(m[2]), length - 1);
  if (m[2] !== '' && Number(m[2]) < start) return null;
  if (start >= length) return 'unsatisfiable';
  return { start, end };
}
