import type { RecordingRecord } from '../store/RecordingMeta.js';
import { isTombstone } from '../store/RecordingMeta.js';

/** One line per recording, for people; `--json` is the contract for programs. */
/** A stored UTC time as people read it, in the display time zone: `2026-12-03 09:15:02 EET`. */
export function localTime(utc: string | null, timeZone: string): string {
  if (!utc) return '-';
  const d = new Date(utc);
  const parts = Object.fromEntries(new Intl.DateTimeFormat('en-GB', { timeZone, year: 'numeric', month: '2-digit', day: '2-digit', hour: '2-digit', minute: '2-digit', second: '2-digit', hourCycle: 'h23', timeZoneName: 'short' }).formatToParts(d).map((p) => [p.type, p.value]));
  return `${parts.year}-${parts.month}-${parts.day} ${parts.hour}:${parts.minute}:${parts.second} ${parts.timeZoneName}`;
}

export function formatList(recs: RecordingRecord[], timeZone = 'UTC'): string {
  if (recs.length === 0) return 'no recordings\n';
  const rows = recs.map((r) =>
    isTombstone(r)
      ? [r.id, '-', '-', '-', '-', '-', `destroyed ${r.destroyedAt}`]
      : [r.id, localTime(r.startedAt, timeZone), r.durationMs === null ? '-' : `${(r.durationMs / 1000).toFixed(1)}s`, r.line, r.caller || '(none)', r.agentName ?? '-', r.status + (r.flags.length ? ` [${r.flags.join(',')}]` : '')],
  );
  const head = ['ID', 'STARTED', 'LENGTH', 'LINE', 'CALLER', 'ADVISER', 'STATUS'];
  const widths = head.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
  return [head, ...rows].map((r) => r.map((c, i) => c.padEnd(widths[i]!)).join('  ').trimEnd()).join('\n') + '\n';
}

export function formatRecord(r: RecordingRecord, timeZone = 'UTC'): string {
  return Object.entries(r)
    .map(([k, v]) => `${k.padEnd(19)} ${['startedAt', 'endedAt', 'destroyedAt'].includes(k) && typeof v === 'string' ? `${localTime(v, timeZone)} (${v})` : typeof v === 'object' && v !== null ? JSON.stringify(v) : String(v)}`)
    .join('\n') + '\n';
}
