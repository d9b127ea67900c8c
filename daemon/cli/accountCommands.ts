import { newPassword, readStdin } from './readSecret.js';
import { ControlCallError } from './ControlClient.js';
import { progressMeter } from './progress.js';
import { EXIT, UsageError } from './usage.js';

export type Call = (method: string, params?: Record<string, unknown>) => Promise<unknown>;

interface UserView {
  username: string;
  displayName: string;
  roles: string[];
  agentId: string | null;
  disabled: boolean;
}

type Values = Record<string, string | boolean | string[] | undefined>;

const out = (s: string): boolean => process.stdout.write(s);
const userLine = (u: UserView): string => `${u.username.padEnd(20)} ${u.roles.join(',').padEnd(24)} ${(u.agentId ?? '-').padEnd(16)} ${u.disabled ? 'DISABLED ' : ''}${u.displayName}`;

/** `callrec users ...`: accounts (admin role), or the first administrator with no session. */
export async function users(call: Call, hasSession: boolean, verb: string | undefined, name: string | undefined, rest: string[], v: Values, json: boolean): Promise<number> {
  if (rest.length > 0) throw new UsageError(`users ${verb}: one user name`);
  const password = async (): Promise<string> => (v['password-stdin'] ? readStdin() : newPassword());
  switch (verb) {
    case 'list': {
      const list = (await call('users.list')) as UserView[];
      out(json ? `${JSON.stringify(list, null, 2)}\n` : `${list.map(userLine).join('\n')}\n`);
      return EXIT.ok;
    }
    case 'add': {
      if (!name) throw new UsageError('users add: the user name');
      const roles = (v.role as string[] | undefined) ?? [];
      if (roles.length === 0) throw new UsageError('users add: at least one --role');
      const params = { username: name, roles, password: await password(), ...(v['agent-id'] ? { agentId: v['agent-id'] } : {}), ...(v['display-name'] ? { displayName: v['display-name'] } : {}) };
      // No session: the only way in is the first administrator, which the daemon allows to root and the service group.
      const made = (await call(hasSession ? 'users.add' : 'users.bootstrap', params).catch((err: Error & { code?: string }) => {
        // Logged in as someone who may not manage accounts (the demo manager, say): the likely aim is the first administrator.
        if (hasSession && err.code === 'forbidden' && roles.includes('admin')) {
          err.message += ': to add the first administrator, run `callrec logout` and then this command as root or a member of the service group';
        }
        throw err;
      })) as UserView;
      out(json ? `${JSON.stringify(made, null, 2)}\n` : `added ${userLine(made)}\n`);
      return EXIT.ok;
    }
    case 'update': {
      if (!name) throw new UsageError('users update: the user name');
      if (v.disable && v.enable) throw new UsageError('users update: --disable or --enable, not both');
      const change = {
        ...(v.role ? { roles: v.role } : {}),
        ...(v['agent-id'] !== undefined ? { agentId: v['agent-id'] === '' ? null : v['agent-id'] } : {}),
        ...(v['display-name'] ? { displayName: v['display-name'] } : {}),
        ...(v.disable ? { disabled: true } : v.enable ? { disabled: false } : {}),
        ...(v.unlock ? { unlock: true } : {}),
      };
      if (Object.keys(change).length === 0) throw new UsageError('users update: nothing to change');
      const u = (await call('users.update', { username: name, ...change })) as UserView;
      out(json ? `${JSON.stringify(u, null, 2)}\n` : `${userLine(u)}\n`);
      return EXIT.ok;
    }
    case 'password': {
      if (!name) throw new UsageError('users password: the user name');
      await call('users.password', { username: name, password: await password() });
      if (process.stderr.isTTY) process.stderr.write(`password of ${name} set; their sessions ended\n`);
      return EXIT.ok;
    }
    default:
      throw new UsageError(`unknown command: users ${verb ?? ''}`.trim());
  }
}

interface AuditEntryView {
  seq: number;
  at: string;
  actor: { user: string | null; via: string; from: string };
  action: string;
  target?: string;
  outcome: string;
}

/** `callrec audit list|verify`. */
export async function audit(call: Call, verb: string | undefined, extra: string | undefined, v: Values, json: boolean): Promise<number> {
  if (extra !== undefined) throw new UsageError(`audit ${verb}: no positional arguments`);
  if (verb === 'list') {
    const q = { ...(v.from ? { from: v.from } : {}), ...(v.to ? { to: v.to } : {}), ...(v.user ? { user: v.user } : {}), ...(v.action ? { action: v.action } : {}), limit: 1000 };
    const all: AuditEntryView[] = [];
    for (let after: number | null | undefined; ; ) {
      const page = (await call('audit.search', { ...q, ...(after ? { afterSeq: after } : {}) })) as { entries: AuditEntryView[]; nextAfterSeq: number | null };
      all.push(...page.entries);
      after = page.nextAfterSeq;
      if (after === null) break;
    }
    out(json ? `${JSON.stringify(all, null, 2)}\n` : `${all.map((e) => `${String(e.seq).padStart(7)} ${e.at} ${(e.actor.user ?? '-').padEnd(16)} ${e.actor.via}/${e.actor.from} ${e.action}${e.target ? ` ${e.target}` : ''} ${e.outcome}`).join('\n')}\n`);
    return EXIT.ok;
  }
  if (verb === 'verify') {
    const heads = ((v.head as string[] | undefined) ?? []).map((h) => {
      const m = /^(\d+):([0-9a-f]{64})$/.exec(h);
      if (!m) throw new UsageError(`audit verify --head: SEQ:HASH (from the journal's "audit head" lines), not ${h}`);
      return { seq: Number(m[1]), hash: m[2] };
    });
    const meter = progressMeter('verifying the audit trail');
    meter.update(0, 1);
    let r: { ok: boolean; entries: number; head: { seq: number; hash: string } | null; problems: Array<{ seq: number | null; kind: string; message: string }> };
    try {
      r = (await call('audit.verify', { heads })) as typeof r;
    } finally {
      meter.end();
    }
    out(json ? `${JSON.stringify(r, null, 2)}\n` : `${r.entries} entries, head ${r.head ? `${r.head.seq}:${r.head.hash}` : '(none)'}: ${r.ok ? 'intact' : `${r.problems.length} problem(s)`}${r.problems.map((p) => `\n  ${p.kind}${p.seq !== null ? ` at ${p.seq}` : ''}: ${p.message}`).join('')}\n`);
    return r.ok ? EXIT.ok : EXIT.failure;
  }
  throw new UsageError(`unknown command: audit ${verb ?? ''}`.trim());
}

export { ControlCallError };
