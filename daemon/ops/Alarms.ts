import type { Logger } from 'pino';

export type Severity = 'warning' | 'critical';

export interface Alarm {
  /** Stable code, e.g. DISK_LOW, CLOCK_UNSYNCED, CAPTURE_FAULT, AUDIO_SILENT. */
  code: string;
  /** What it is about (a card, a line, the data volume); never personal data. */
  subject: string;
  severity: Severity;
  text: string;
  firstSeen: string;
  lastSeen: string;
}

/**
 * The alarms in force. Raising an alarm already raised only moves its `lastSeen`; each raise and clear
 * is logged once. `/health`, `callrec status` and the systemd STATUS line read the same list.
 */
export class Alarms {
  private readonly active = new Map<string, Alarm>();

  constructor(private readonly log: Logger, private readonly now: () => number = Date.now) {}

  raise(code: string, subject: string, severity: Severity, text: string): void {
    const key = `${code}/${subject}`;
    const at = new Date(this.now()).toISOString();
    const a = this.active.get(key);
    if (a) {
      a.lastSeen = at;
      a.text = text;
      a.severity = severity;
      return;
    }
    this.active.set(key, { code, subject, severity, text, firstSeen: at, lastSeen: at });
    this.log[severity === 'critical' ? 'error' : 'warn']({ alarm: code, subject }, `alarm: ${text}`);
  }

  clear(code: string, subject: string): void {
    if (this.active.delete(`${code}/${subject}`)) this.log.info({ alarm: code, subject }, 'alarm cleared');
  }

  list(): Alarm[] {
    return [...this.active.values()].sort((a, b) => (a.severity === b.severity ? a.firstSeen.localeCompare(b.firstSeen) : a.severity === 'critical' ? -1 : 1));
  }

  /** One short line for the systemd STATUS. */
  summary(): string {
    const list = this.list();
    if (list.length === 0) return '';
    return `; ${list.length} alarm${list.length > 1 ? 's' : ''}: ${list[0]!.text}`;
  }
}
