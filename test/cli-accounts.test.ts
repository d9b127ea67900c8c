import t from 'tap';
import { spawn } from 'node:child_process';
import { chmodSync, existsSync, mkdtempSync, readFileSync, statSync, truncateSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { startTestDaemon } from './helpers/testDaemon.js';
import { PASSWORD, runCli } from './helpers/people.js';

const td = await startTestDaemon();
t.teardown(() => td.stop());
const socket = td.cfg.control.socket;
const runtime = mkdtempSync(join(tmpdir(), 'callrec-run-'));
const env = { XDG_RUNTIME_DIR: runtime };
const cli = (args: string[], input?: string) => runCli(['--socket', socket, ...args], env, input);

/**
 * One control-socket request sent by another Unix user (nobody), from a one-line client (the checkout
 * itself may be unreadable to that user): what the daemon answers, as the CLI would show it.
 */
function requestAs(uid: number, gid: number, method: string, params: Record<string, unknown>): Promise<{ ok: boolean; error?: { code: string; message: string } }> {
  const client = `const s=require('net').connect(process.argv[1],()=>s.write(JSON.stringify({id:1,method:process.argv[2],params:JSON.parse(process.argv[3])})+'\\n'));let b='';s.on('data',d=>{b+=d;if(b.includes('\\n')){process.stdout.write(b);s.end();}});s.on('error',e=>{process.stdout.write(JSON.stringify({ok:false,error:{code:'unreachable',message:e.code}}));});`;
  return new Promise((resolve) => {
    const child = spawn('/usr/bin/env', ['-u', 'NODE_OPTIONS', process.execPath, '-e', client, socket, method, JSON.stringify(params)], { uid, gid, cwd: '/', env: { PATH: process.env.PATH ?? '' }, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    child.on('close', () => resolve(JSON.parse(out.split('\n')[0] || '{"ok":false}')));
  });
}

t.test('without a session every command exits 3 and never prompts (stdin is not a terminal)', async (t) => {
  for (const args of [['status'], ['calls', 'list'], ['calls', 'show', '01ARZ3NDEKTSV4RRFFQ69G5FAV'], ['users', 'list'], ['audit', 'verify'], ['whoami'], ['keys', 'rotate']]) {
    const r = await cli(args);
    t.equal(r.code, 3, `${args.join(' ')}: exit 3`);
    t.match(r.stderr, /callrec login/);
    t.notMatch(r.stderr, /password:/, 'no prompt');
  }
  const noStdin = await cli(['login', 'someone']);
  t.equal(noStdin.code, 2, 'login without a terminal and without --password-stdin: usage');
  t.match(noStdin.stderr, /--password-stdin/);
});

t.test('the first administrator: refused to another Unix user, made for root, only while none exists', { skip: process.getuid?.() !== 0 && 'needs root (to run a client as nobody)' }, async (t) => {
  // Let nobody reach the socket at all, so the refusal below is the daemon's (SO_PEERCRED), not the file mode's.
  const dir = dirname(socket);
  chmodSync(dir, 0o755);
  chmodSync(socket, 0o666);
  const nobody = await requestAs(65534, 65534, 'users.bootstrap', { username: 'mallory', password: PASSWORD });
  chmodSync(socket, 0o660);
  chmodSync(dir, 0o750);
  t.equal(nobody.ok, false);
  t.equal(nobody.error?.code, 'forbidden', 'refused by the daemon (SO_PEERCRED), not by the file mode');
  t.match(nobody.error?.message, /only by root or a member of group callrec/);
  const made = await cli(['users', 'add', 'boss', '--role', 'admin', '--password-stdin', '--json'], `${PASSWORD}\n`);
  t.equal(made.code, 0, made.stderr);
  t.match(JSON.parse(made.stdout), { username: 'boss', roles: ['admin'], disabled: false });
  t.notOk(made.stdout.includes('scrypt'), 'no hash in the answer');
  const second = await cli(['users', 'add', 'boss2', '--role', 'admin', '--password-stdin'], `${PASSWORD}\n`);
  t.equal(second.code, 3, 'an administrator exists: log in first');
  const weak = await cli(['users', 'add', 'boss3', '--role', 'quality', '--password-stdin'], `${PASSWORD}\n`);
  t.equal(weak.code, 3, 'no session and not the first administrator');
});

t.test('login, whoami, the session file (0600 in the runtime directory), logout', async (t) => {
  t.equal((await cli(['login', 'boss', '--password-stdin'], 'wrong password here\n')).code, 3, 'a wrong password: not logged in');
  const r = await cli(['login', 'boss', '--password-stdin'], `${PASSWORD}\n`);
  t.equal(r.code, 0, r.stderr);
  const file = readFileSync(join(runtime, 'callrec', (await import('node:fs')).readdirSync(join(runtime, 'callrec'))[0]!), 'utf8');
  const saved = JSON.parse(file);
  t.equal(saved.username, 'boss');
  t.equal(saved.socket, socket);
  const dirMode = statSync(join(runtime, 'callrec')).mode & 0o777;
  t.equal(dirMode, 0o700);
  const fileName = (await import('node:fs')).readdirSync(join(runtime, 'callrec'))[0]!;
  t.equal(statSync(join(runtime, 'callrec', fileName)).mode & 0o777, 0o600);
  const who = await cli(['whoami', '--json']);
  t.equal(who.code, 0);
  t.match(JSON.parse(who.stdout), { user: { username: 'boss', roles: ['admin'] } });
  t.notOk(who.stdout.includes(saved.token), 'the token is not printed');
  t.equal((await cli(['calls', 'list'])).code, 1, 'an administrator has no recordings: refused (exit 1)');
  chmodSync(join(runtime, 'callrec', fileName), 0o644);
  t.equal((await cli(['whoami'])).code, 3, 'a session file others can read is not used');
  chmodSync(join(runtime, 'callrec', fileName), 0o600);
  t.equal((await cli(['whoami'])).code, 0);
});

t.test('an administrator manages accounts from the CLI; people change their own password', async (t) => {
  const add = await cli(['users', 'add', 'aino', '--role', 'agent', '--agent-id', 'aino.virtanen', '--display-name', 'Aino V', '--password-stdin', '--json'], `${PASSWORD}\n`);
  t.equal(add.code, 0, add.stderr);
  t.match(JSON.parse(add.stdout), { username: 'aino', roles: ['agent'], agentId: 'aino.virtanen', displayName: 'Aino V' });
  t.equal((await cli(['users', 'add', 'bad', '--role', 'agent', '--password-stdin'], `${PASSWORD}\n`)).code, 2, 'an agent without an adviser id: bad request');
  t.equal((await cli(['users', 'add', 'weak', '--role', 'quality', '--password-stdin'], 'short\n')).code, 2, 'a weak password: bad request');
  const list = JSON.parse((await cli(['users', 'list', '--json'])).stdout) as Array<{ username: string }>;
  t.same(list.map((u) => u.username).sort(), ['aino', 'boss']);
  const other = { XDG_RUNTIME_DIR: mkdtempSync(join(tmpdir(), 'callrec-run-')) };
  t.equal((await runCli(['--socket', socket, 'login', 'aino', '--password-stdin'], other, `${PASSWORD}\n`)).code, 0);
  const notAdmin = await runCli(['--socket', socket, 'users', 'add', 'second.admin', '--role', 'admin', '--password-stdin'], other, `${PASSWORD}\n`);
  t.not(notAdmin.code, 0, 'an agent may not add an administrator');
  t.match(notAdmin.stderr, /do not allow users\.manage: to add the first administrator, run `callrec logout`/, 'and is told how the first administrator is made');
  t.equal((await runCli(['--socket', socket, 'passwd', '--password-stdin'], other, `${PASSWORD}\nanother long passphrase\n`)).code, 0);
  t.equal((await runCli(['--socket', socket, 'login', 'aino', '--password-stdin'], other, 'another long passphrase\n')).code, 0, 'the new password works');
  t.equal((await cli(['users', 'update', 'aino', '--disable'])).code, 0);
  t.equal((await runCli(['--socket', socket, 'calls', 'list'], other)).code, 3, 'disabled: the open session ends at once');
  t.equal((await runCli(['--socket', socket, 'login', 'aino', '--password-stdin'], other, 'another long passphrase\n')).code, 3);
  t.equal((await cli(['users', 'update', 'nobody.such', '--enable'])).code, 4, 'an unknown user: not found');
});

t.test('audit list and audit verify; verify detects an edited entry and a cut tail', async (t) => {
  const list = await cli(['audit', 'list', '--json', '--action', 'users.add']);
  t.equal(list.code, 0, list.stderr);
  t.ok((JSON.parse(list.stdout) as Array<{ target: string }>).some((e) => e.target === 'aino'));
  const ok = await cli(['audit', 'verify', '--json']);
  t.equal(ok.code, 0, ok.stdout);
  t.equal(JSON.parse(ok.stdout).ok, true);
  await td.daemon.audit.publishHead();
  const trail = join(td.cfg.dataDir, 'audit', 'trail.jsonl');
  const original = readFileSync(trail, 'utf8');
  const lines = original.trimEnd().split('\n');
  const edited = [...lines];
  edited[2] = edited[2]!.replace('"outcome":"ok"', '"outcome":"denied"').replace('"outcome":"denied"', '"outcome":"failed"');
  t.not(edited[2], lines[2], 'an entry was changed');
  writeFileSync(trail, `${edited.join('\n')}\n`);
  const bad = await cli(['audit', 'verify', '--json']);
  t.equal(bad.code, 1);
  t.ok((JSON.parse(bad.stdout).problems as Array<{ kind: string; seq: number }>).some((p) => p.kind === 'edited' && p.seq === 3), 'edited at 3');
  writeFileSync(trail, original);
  truncateSync(trail, Buffer.byteLength(lines.slice(0, -2).join('\n') + '\n'));
  const cut = await cli(['audit', 'verify']);
  t.equal(cut.code, 1);
  t.match(cut.stdout, /cut_tail/);
  const journalHead = `${lines.length}:${JSON.parse(lines[lines.length - 1]!).hash}`;
  t.ok(existsSync(join(td.cfg.dataDir, 'audit', 'head.json')));
  const given = await cli(['audit', 'verify', '--head', journalHead, '--json']);
  const kinds = (JSON.parse(given.stdout).problems as Array<{ kind: string; seq: number }>).map((p) => `${p.kind}@${p.seq}`);
  // The daemon went on appending after the cut (these verify runs are audited too): the gap shows as removed entries.
  t.ok(kinds.includes(`removed@${lines.length - 1}`), `the two cut entries show: ${kinds.join(', ')}`);
  t.equal((await cli(['audit', 'verify', '--head', 'nonsense'])).code, 2);
});

t.test('logout ends the session and removes the file', async (t) => {
  t.equal((await cli(['logout'])).code, 0);
  t.equal((await import('node:fs')).readdirSync(join(runtime, 'callrec')).length, 0);
  t.equal((await cli(['whoami'])).code, 3);
});
