import { spawn } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { callDaemon } from '../../daemon/cli/ControlClient.js';

/** One password for every test account (it passes the policy). */
export const PASSWORD = 'correct horse battery staple';
export const CLI = resolve('dist/daemon/bin/callrec.js');

/** Logs in over the control socket (as the CLI does); returns the session token. */
export async function login(socket: string, username: string, password = PASSWORD): Promise<string> {
  return ((await callDaemon(socket, 'session.login', { username, password })) as { token: string }).token;
}

/**
 * The accounts a test needs, made the way an installation makes them: the first administrator through
 * the socket as root (tests run as root), then the others by that administrator. Returns their tokens.
 */
export async function people(socket: string, wanted: Array<{ username: string; roles: string[]; agentId?: string }>): Promise<Record<string, string>> {
  await callDaemon(socket, 'users.bootstrap', { username: 'first.admin', password: PASSWORD }).catch((err: { code?: string }) => {
    if (err.code !== 'unauthenticated') throw err; // an administrator exists already
  });
  const admin = await login(socket, 'first.admin');
  const tokens: Record<string, string> = { 'first.admin': admin };
  for (const w of wanted) {
    await callDaemon(socket, 'users.add', { ...w, password: PASSWORD }, admin).catch((err: { code?: string }) => {
      if (err.code !== 'conflict') throw err;
    });
    tokens[w.username] = await login(socket, w.username);
  }
  return tokens;
}

/** A manager (who is also a technician) for tests that drive the daemon through its socket. */
export async function managerToken(socket: string): Promise<string> {
  return (await people(socket, [{ username: 'test.manager', roles: ['manager', 'technician'] }]))['test.manager']!;
}

/** Runs the real CLI; resolves with its exit code and output (stdin fed from `input`). */
export function runCli(args: string[], env: Record<string, string> = {}, input?: string): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolveRun) => {
    const child = spawn(process.execPath, [CLI, ...args], { env: { ...process.env, CALLREC_SOCKET: '', ...env }, stdio: ['pipe', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    child.stdin.end(input ?? '');
    child.on('close', (code) => resolveRun({ code: code ?? -1, stdout, stderr }));
  });
}

/** A fresh runtime directory with a CLI session of `username` in it (through `callrec login --password-stdin`). */
export async function cliLogin(socket: string, username: string, password = PASSWORD): Promise<Record<string, string>> {
  const env = { XDG_RUNTIME_DIR: mkdtempSync(join(tmpdir(), 'callrec-run-')) };
  const r = await runCli(['--socket', socket, 'login', username, '--password-stdin'], env, `${password}\n`);
  if (r.code !== 0) throw new Error(`callrec login ${username}: exit ${r.code}: ${r.stderr}`);
  return env;
}
