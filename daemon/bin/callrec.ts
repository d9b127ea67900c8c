#!/usr/bin/env node
import { renameSync, rmSync, writeFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { loadConfig } from '../config/loadConfig.js';
import { callDaemon, ControlCallError } from '../cli/ControlClient.js';
import { formatList, formatRecord } from '../cli/format.js';
import { progressMeter } from '../cli/progress.js';
import type { RecordingRecord } from '../store/RecordingMeta.js';
import { dropSession, loadSession, saveSession, sessionFile } from '../cli/sessionFile.js';
import { newPassword, promptLine, promptSecret, readStdin, secretFromTty } from '../cli/readSecret.js';
import { EXIT, UsageError } from '../cli/usage.js';
import { audit, users, type Call } from '../cli/accountCommands.js';


const USAGE = `usage: callrec [--socket PATH | --config FILE] COMMAND
  login [USER] [--password-stdin]      (a password prompt on a terminal)
  logout
  whoami [--json]
  passwd [--password-stdin]            (your own password: the current one, then the new one)
  users list [--json]
  users add USER --role R [--role R]... [--agent-id ID] [--display-name NAME] [--password-stdin]
      (the first administrator: as root or the service group, with no session, --role admin)
  users update USER [--role R]... [--agent-id ID] [--display-name NAME] [--disable | --enable] [--unlock] [--json]
  users password USER [--password-stdin]
  audit list [--from T] [--to T] [--user U] [--action A] [--json]
  audit verify [--head SEQ:HASH]... [--json]
  calls list [--json] [--from T] [--to T] [--caller N] [--agent ID] [--include-destroyed] [--newest-first]
  calls show ID [--json]
  calls export ID --format wav|opus -o FILE
  calls destroy ID --reason TEXT [--json]
  calls training ID [--off] [--json]   (mark as training material, or take the mark off)
  verify (ID | --all) [--json]
  keys rotate [--json]
  db rebuild --offline --config FILE [--json]
  status [--json]
R: manager, quality, agent, technician, admin (docs/security.md). Without a session every command but
login exits 3; nothing prompts unless stdin is a terminal.
T: an RFC 3339 time or a date (YYYY-MM-DD, midnight UTC); --from inclusive, --to exclusive.
The socket: --socket, else $CALLREC_SOCKET, else the one in --config FILE, else /run/callrec/callrec.sock.`;


async function main(argv: string[]): Promise<number> {
  const { values, positionals } = parseArgs({
    args: argv,
    allowPositionals: true,
    options: {
      socket: { type: 'string' },
      config: { type: 'string' },
      json: { type: 'boolean' },
      from: { type: 'string' },
      to: { type: 'string' },
      caller: { type: 'string' },
      agent: { type: 'string' },
      'include-destroyed': { type: 'boolean' },
      'newest-first': { type: 'boolean' },
      reason: { type: 'string' },
      all: { type: 'boolean' },
      offline: { type: 'boolean' },
      format: { type: 'string' },
      output: { type: 'string', short: 'o' },
      'password-stdin': { type: 'boolean' },
      role: { type: 'string', multiple: true },
      'agent-id': { type: 'string' },
      'display-name': { type: 'string' },
      disable: { type: 'boolean' },
      enable: { type: 'boolean' },
      unlock: { type: 'boolean' },
      off: { type: 'boolean' },
      user: { type: 'string' },
      action: { type: 'string' },
      head: { type: 'string', multiple: true },
      help: { type: 'boolean', short: 'h' },
      version: { type: 'boolean' },
    },
  });
  if (values.version) {
    process.stdout.write('callrec 0.1.0\n');
    return EXIT.ok;
  }
  if (values.help) {
    process.stdout.write(`${USAGE}\n`);
    return EXIT.ok;
  }
  const socket = values.socket || process.env.CALLREC_SOCKET || (values.config ? loadConfig(values.config).control.socket : '/run/callrec/callrec.sock');
  const [group, verb, id, ...rest] = positionals;
  const out = (s: string): boolean => process.stdout.write(s);
  const saved = loadSession(socket);
  const call = (method: string, params: Record<string, unknown> = {}): Promise<unknown> => callDaemon(socket, method, params, saved?.token);
  const json = values.json === true;
  if (group === 'login') return login(socket, verb, values['password-stdin'] === true);
  if (group === 'logout' && !verb) {
    if (saved) await call('session.logout').catch((err: unknown) => {
      if (!(err instanceof ControlCallError && err.code === 'unauthenticated')) throw err;
    });
    dropSession(socket);
    if (process.stderr.isTTY) process.stderr.write('logged out\n');
    return EXIT.ok;
  }
  if (group === 'whoami' && !verb) {
    const who = (await call('session.whoami')) as { user: { username: string; roles: string[]; agentId: string | null }; expiresAt: string };
    out(json ? `${JSON.stringify(who, null, 2)}\n` : `${who.user.username} (${who.user.roles.join(', ')}${who.user.agentId ? `, adviser ${who.user.agentId}` : ''}), session until ${who.expiresAt}\n`);
    return EXIT.ok;
  }
  if (group === 'passwd' && !verb) {
    const currentPassword = values['password-stdin'] ? undefined : await secretFromTty('current password: ');
    const password = values['password-stdin'] ? await readStdin() : await newPassword();
    if (currentPassword === undefined) {
      const [cur, next] = password.split('\n');
      if (next === undefined) throw new UsageError('passwd --password-stdin: the current password, a newline, then the new one');
      await call('account.password', { currentPassword: cur, password: next });
    } else await call('account.password', { currentPassword, password });
    if (process.stderr.isTTY) process.stderr.write('password changed\n');
    return EXIT.ok;
  }
  if (group === 'users') return users(call, saved !== null, verb, id, rest, values, json);
  if (group === 'audit') return audit(call, verb, id, values, json);
  const needId = (): string => {
    if (!id || rest.length > 0) throw new UsageError(`calls ${verb}: exactly one recording ID`);
    return id;
  };
  if (group === 'status' && positionals.length === 1) {
    const st = await call('status');
    out(values.json ? `${JSON.stringify(st, null, 2)}\n` : formatStatus(st as Record<string, unknown>));
    return EXIT.ok;
  }
  if (group === 'verify') return verify(call, verb, values.all === true, json);
  if (group === 'keys' && verb === 'rotate' && !id) {
    const r = (await call('keys.rotate')) as { rotated: number; masterKeyId: string };
    out(values.json ? `${JSON.stringify(r)}\n` : `${r.rotated} epoch key(s) re-sealed under master key ${r.masterKeyId}\n`);
    return EXIT.ok;
  }
  if (group === 'db' && verb === 'rebuild' && !id) {
    if (!values.offline || !values.config) throw new UsageError('db rebuild needs --offline --config FILE (stop callrecd first: the index allows one process)');
    const { rebuildOffline } = await import('../cli/rebuildOffline.js');
    const r = await rebuildOffline(values.config);
    out(values.json ? `${JSON.stringify(r)}\n` : `restored ${r.restored} recording(s) from sidecars${r.failed.length ? `; ${r.failed.length} failed:\n${r.failed.map((f) => `  ${f.file}: ${f.problem}`).join('\n')}` : ''}\nold index kept at ${r.oldIndex ?? '(none)'}\n`);
    return r.failed.length ? EXIT.failure : EXIT.ok;
  }
  if (group !== 'calls') throw new UsageError(group ? `unknown command: ${positionals.join(' ')}` : 'no command');
  switch (verb) {
    case 'list': {
      if (id) throw new UsageError('calls list takes no ID');
      const params = { from: values.from, to: values.to, caller: values.caller, agent: values.agent, includeDestroyed: values['include-destroyed'] === true, limit: 500, ...(values['newest-first'] ? { order: 'desc' } : {}) };
      // Page by page (each page is one audited search), into the one array the contract gives.
      const recs: RecordingRecord[] = [];
      for (let cursor: string | null | undefined; ; ) {
        const page = (await call('calls.search', { ...params, ...(cursor ? { cursor } : {}) })) as { items: RecordingRecord[]; nextCursor: string | null };
        recs.push(...page.items);
        cursor = page.nextCursor;
        if (!cursor) break;
      }
      out(values.json ? `${JSON.stringify(recs, null, 2)}\n` : formatList(recs, await displayZone(call)));
      return EXIT.ok;
    }
    case 'show': {
      const rec = (await call('calls.show', { id: needId() })) as RecordingRecord;
      out(values.json ? `${JSON.stringify(rec, null, 2)}\n` : formatRecord(rec, await displayZone(call)));
      return EXIT.ok;
    }
    case 'export': {
      const rid = needId();
      if (values.format !== 'wav' && values.format !== 'opus') throw new UsageError(values.format === undefined ? 'calls export: --format wav|opus is required' : `calls export: --format must be wav or opus, not ${values.format}`);
      if (!values.output) throw new UsageError('calls export: -o FILE is required');
      const { data } = (await call('calls.export', { id: rid, format: values.format })) as { data: string };
      // Written beside the target and renamed, so a failed export never leaves half a file.
      const tmp = `${values.output}.${process.pid}.part`;
      try {
        writeFileSync(tmp, Buffer.from(data, 'base64'), { mode: 0o600 });
        renameSync(tmp, values.output);
      } catch (err) {
        rmSync(tmp, { force: true });
        throw new Error(`cannot write ${values.output}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
      }
      if (process.stderr.isTTY) process.stderr.write(`exported ${rid} to ${values.output}\n`);
      return EXIT.ok;
    }
    case 'destroy': {
      const rid = needId();
      if (!values.reason?.trim()) throw new UsageError('calls destroy: --reason TEXT is required');
      const tomb = await call('calls.destroy', { id: rid, reason: values.reason });
      out(values.json ? `${JSON.stringify(tomb, null, 2)}\n` : `destroyed ${rid}\n`);
      return EXIT.ok;
    }
    case 'training': {
      const rid = needId();
      const rec = (await call('calls.training', { id: rid, marked: values.off !== true })) as RecordingRecord;
      out(values.json ? `${JSON.stringify(rec, null, 2)}\n` : `${rid}: ${values.off ? 'training mark taken off' : 'marked for training'}\n`);
      return EXIT.ok;
    }
    default:
      throw new UsageError(`unknown command: calls ${verb ?? ''}`.trim());
  }
}

/** `callrec login`: a prompt on a terminal, else --password-stdin; never a prompt without a terminal. */
async function login(socket: string, user: string | undefined, fromStdin: boolean): Promise<number> {
  const tty = process.stdin.isTTY === true;
  if (!fromStdin && !tty) throw new UsageError('login: stdin is not a terminal: pass the password with --password-stdin');
  const username = user ?? (tty && !fromStdin ? await promptLine('user name: ') : undefined);
  if (!username) throw new UsageError('login: the user name');
  const password = fromStdin ? await readStdin() : await promptSecret('password: ');
  sessionFile(socket); // where the session will go, checked before the daemon makes one
  const r = (await callDaemon(socket, 'session.login', { username, password })) as { token: string; expiresAt: string; user: { username: string; roles: string[] } };
  const file = saveSession({ socket, token: r.token, username: r.user.username, expiresAt: r.expiresAt });
  if (process.stderr.isTTY) process.stderr.write(`logged in as ${r.user.username} (${r.user.roles.join(', ')}) until ${r.expiresAt}; session in ${file}\n`);
  return EXIT.ok;
}

/** `verify ID` or `verify --all`: one request per recording, so a terminal shows progress. */
async function verify(call: Call, id: string | undefined, all: boolean, json: boolean): Promise<number> {
  if ((id === undefined) === !all) throw new UsageError('verify: an ID or --all');
  const ids = all ? ((await call('verify.ids')) as string[]) : [id!];
  const meter = progressMeter('verifying');
  const results: Array<{ id: string; ok: boolean; problem?: string }> = [];
  for (const [i, rid] of ids.entries()) {
    results.push((await call('verify', { id: rid })) as { id: string; ok: boolean; problem?: string });
    meter.update(i + 1, ids.length);
  }
  meter.end();
  const bad = results.filter((r) => !r.ok);
  if (json) process.stdout.write(`${JSON.stringify({ checked: results.length, failed: bad }, null, 2)}\n`);
  else process.stdout.write(`${results.length} checked, ${bad.length} failed${bad.map((b) => `\n  ${b.problem}`).join('')}\n`);
  return bad.length ? EXIT.failure : EXIT.ok;
}

/** The daemon's display time zone, for plain output (JSON stays UTC). */
async function displayZone(call: Call): Promise<string> {
  return ((await call('display')) as { displayTimeZone: string }).displayTimeZone;
}

function formatStatus(st: Record<string, unknown>): string {
  const cards = (st.cards as Array<Record<string, unknown>>).map((c) => `  card ${c.id} (${c.backend}): ${c.framesCaptured} frames, ${c.gaps} gaps${c.faulted ? ', FAULT' : ''}`);
  const alarms = (st.alarms as Array<Record<string, unknown>>).map((a) => `  ${String(a.severity).toUpperCase()} ${a.code} (${a.subject}): ${a.text}, since ${a.firstSeen}`);
  return [`callrecd ${st.version}, up ${st.uptimeS} s`, `lines: ${st.lines}, recording now: ${st.activeRecordings}, stored: ${st.recordingsStored}`, ...cards, alarms.length ? 'alarms:' : 'alarms: none', ...alarms, ''].join('\n');
}

// exitCode, not exit(): a piped stdout must drain before the process ends.
// What the CLI writes (exports, a rebuilt index) is personal data: 0640 files, 0750 folders.
process.umask(0o027);
main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
  },
  (err: Error) => {
    if (err instanceof UsageError || (err as NodeJS.ErrnoException).code?.startsWith('ERR_PARSE_ARGS')) {
      process.stderr.write(`callrec: ${err.message}\n${USAGE}\n`);
      process.exitCode = EXIT.usage;
      return;
    }
    process.stderr.write(`callrec: ${err.message}\n`);
    if (err instanceof ControlCallError && err.code === 'not_found') process.exitCode = EXIT.notFound;
    else if (err instanceof ControlCallError && err.code === 'unauthenticated') {
      process.stderr.write('callrec: log in with `callrec login` (scripts: `callrec login USER --password-stdin`)\n');
      process.exitCode = EXIT.notLoggedIn;
    }
    else if (err instanceof ControlCallError && err.code === 'bad_request') process.exitCode = EXIT.usage;
    else process.exitCode = EXIT.failure;
  },
);
