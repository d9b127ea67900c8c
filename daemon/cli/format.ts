import type { RecordingRecord } from '../store/RecordingMeta.js';
import { isTombstone } from '../store/RecordingMeta.js';

/** One line per recording, for people; `--json` is the contract for programs. */
export function formatList(recs: RecordingRecord[]): string {
  if (recs.length === 0) return 'no recordings\n';
  const rows = recs.map((r) =>
    isTombstone(r)
      ? [r.id, '-', '-', '-', '-', '-', `destroyed ${r.destroyedAt}`]
      : [r.id, r.startedAt, r.durationMs === null ? '-' : `${(r.durationMs / 1000).toFixed(1)}s`, r.line, r.caller || '(none)', r.agentName ?? '-', r.status + (r.flags.length ? ` [${r.flags.join(',')}]` : '')],
  );
  const head = ['ID', 'STARTED (UTC)', 'LENGTH', 'LINE', 'CALLER', 'ADVISER', 'STATUS'];
  const widths = head.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
  return [head, ...rows].map((r) => r.map((c, i) => c.padEnd(widths[i]!)).join('  ').trimEnd()).join('\n') + '\n';
}

export function formatRecord(r: RecordingRecord): string {
  return Object.entries(r)
    .map(([k, v]) => `${k.padEnd(19)} ${typeof v === 'object' && v !== null ? JSON.stringify(v) : String(v)}`)
    .join('\n') + '\n';
}
