import t, { type Test } from 'tap';
import { spawn, type SpawnOptions } from 'node:child_process';
import { chmodSync, existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { createConnection, createServer, type AddressInfo, type Server, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { peerCred, peerInGroup, type PeerCred } from '../native/peerCred.js';

/** Real sockets throughout: a Unix-domain (or TCP) server whose connection handler reads the peer's credentials. */
interface Accepted { cred: PeerCred | null; threw: unknown; sock: Socket }

function listen(server: Server, where: string | { host: string; port: number }): Promise<void> {
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    const done = () => { server.off('error', reject); resolve(); };
    if (typeof where === 'string') server.listen(where, done);
    else server.listen(where.port, where.host, done);
  });
}

/** A server that answers each connection with "ok" after reading peerCred at accept time (the peer is still alive). */
function credServer(): { server: Server; next: () => Promise<Accepted> } {
  const queue: Accepted[] = [];
  const waiters: ((a: Accepted) => void)[] = [];
  const server = createServer((sock) => {
    let cred: PeerCred | null = null;
    let threw: unknown = undefined;
    try {
      cred = peerCred(sock);
    } catch (e) {
      threw = e;
    }
    sock.on('error', () => {});
    sock.end('ok');
    const a = { cred, threw, sock };
    const w = waiters.shift();
    if (w) w(a);
    else queue.push(a);
  });
  const next = () => {
    const a = queue.shift();
    return a ? Promise.resolve(a) : new Promise<Accepted>((r) => waiters.push(r));
  };
  return { server, next };
}

/** Supplementary groups of `pid` as the test reads them itself: the numbers after "Groups:" in /proc/<pid>/status. */
function procGroups(pid: number | 'self'): number[] {
  const line = readFileSync(`/proc/${pid}/status`, 'utf8').split('\n').find((l) => l.startsWith('Groups:'));
  return line ? line.slice('Groups:'.length).trim().split(' ').filter(Boolean).map((n) => parseInt(n, 10)) : [];
}

/** A `node -e` child that connects to `path`, waits for the server's answer and exits 0 (`wrap`: a command that execs it). */
function connectingChild(path: string, opts: SpawnOptions = {}, wrap: string[] = []) {
  const code = `const s = require('net').connect(${JSON.stringify(path)});
let got = '';
s.on('data', (d) => { got += d; });
s.on('error', (e) => { console.error(e.message); process.exit(2); });
s.on('close', () => process.exit(got === 'ok' ? 0 : 3));`;
  // Through env(1), which execs node in place (same pid) without the NODE_OPTIONS hooks tap adds to every
  // spawn: those would write under ./.tap/ at exit, which nobody may not.
  const argv = [...wrap, 'env', '-u', 'NODE_OPTIONS', process.execPath, '-e', code];
  const child = spawn(argv[0]!, argv.slice(1), { stdio: ['ignore', 'ignore', 'inherit'], ...opts });
  const exited = new Promise<number | null>((r) => child.once('exit', (c) => r(c)));
  return { child, exited };
}

async function unixServer(t: Test, mode?: number) {
  const dir = mkdtempSync(join(tmpdir(), 'callrec-peercred-'));
  const path = join(dir, 'ctl.sock');
  const { server, next } = credServer();
  await listen(server, path);
  if (mode !== undefined) {
    chmodSync(dir, mode);
    chmodSync(path, mode);
  }
  t.teardown(() => new Promise<void>((r) => server.close(() => { rmSync(dir, { recursive: true, force: true }); r(); })));
  return { path, next };
}

let rootPeer: PeerCred | null = null;

t.test('a connection from this process: our pid, uid, gid and groups', async (t) => {
  const { path, next } = await unixServer(t);
  const client = createConnection(path);
  client.on('error', () => {});
  client.resume();
  const { cred, threw } = await next();
  client.destroy();
  t.equal(threw, undefined, 'peerCred does not throw');
  t.ok(cred, 'credentials available');
  t.equal(cred!.pid, process.pid, 'pid');
  t.equal(cred!.uid, process.getuid!(), 'uid');
  t.equal(cred!.gid, process.getgid!(), 'gid');
  t.same(cred!.groups, procGroups('self'), 'groups as /proc/self/status lists them');
  if (process.getuid!() === 0) rootPeer = cred;
});

t.test('a connection from a child process: the child\'s pid', async (t) => {
  const { path, next } = await unixServer(t);
  const { child, exited } = connectingChild(path);
  const { cred } = await next();
  t.equal(await exited, 0, 'child connected and got the answer');
  t.ok(cred, 'credentials available');
  t.equal(cred!.pid, child.pid, 'pid is the child\'s');
  t.not(cred!.pid, process.pid);
  t.equal(cred!.uid, process.getuid!(), 'uid');
  t.equal(cred!.gid, process.getgid!(), 'gid');
  t.same(cred!.groups, procGroups('self'), 'the child inherited our supplementary groups');
});

const notRoot = typeof process.getuid !== 'function' || process.getuid() !== 0;
t.test('a connection from nobody (65534) is told apart from root', { skip: notRoot ? 'needs root to spawn a child as uid 65534' : false }, async (t) => {
  const { path, next } = await unixServer(t, 0o777);
  const { child, exited } = connectingChild(path, { uid: 65534, gid: 65534, cwd: '/' });
  const { cred } = await next();
  t.equal(await exited, 0, 'child (as nobody) connected and got the answer');
  t.ok(cred, 'credentials available');
  t.equal(cred!.pid, child.pid, 'pid');
  t.equal(cred!.uid, 65534, 'uid');
  t.equal(cred!.gid, 65534, 'gid');
  t.same(cred!.groups, [], 'no supplementary groups (libuv drops them when it changes uid)');
  t.equal(peerInGroup(cred!, 0), false, 'nobody is not in group 0');
  t.equal(peerInGroup(cred!, 65534), true, 'nobody is in its primary group');

  const root = rootPeer ?? { pid: process.pid, uid: 0, gid: 0, groups: [] };
  t.equal(root.uid, 0);
  t.equal(peerInGroup(root, 0), true, 'a root peer passes');
  t.equal(peerInGroup(root, 4242), true, 'a root peer passes whatever the group');
});

t.test('a non-root peer with gid 0 as primary group is in group 0', { skip: notRoot ? 'needs root to spawn a child as uid 65534' : false }, async (t) => {
  const { path, next } = await unixServer(t, 0o777);
  const { exited } = connectingChild(path, { uid: 65534, gid: 0, cwd: '/' });
  const { cred } = await next();
  t.equal(await exited, 0);
  t.equal(cred!.uid, 65534);
  t.equal(cred!.gid, 0);
  t.equal(peerInGroup(cred!, 0), true);
});

const setpriv = ['/usr/bin/setpriv', '/bin/setpriv'].find((p) => existsSync(p));
t.test('a non-root peer with supplementary groups: read from /proc, counted by peerInGroup', {
  skip: notRoot ? 'needs root to change the child\'s groups' : !setpriv ? 'setpriv(1) not installed' : false,
}, async (t) => {
  const { path, next } = await unixServer(t, 0o777);
  // setpriv execs in place, so the pid is the one spawned; libuv's spawn cannot set supplementary groups.
  const { child, exited } = connectingChild(path, { cwd: '/' }, [setpriv!, '--reuid=65534', '--regid=65534', '--groups=4,27,997']);
  const { cred } = await next();
  t.equal(await exited, 0, 'child connected and got the answer');
  t.ok(cred, 'credentials available');
  t.equal(cred!.pid, child.pid, 'pid');
  t.equal(cred!.uid, 65534, 'uid');
  t.equal(cred!.gid, 65534, 'gid');
  t.same(cred!.groups, [4, 27, 997], 'supplementary groups');
  t.equal(peerInGroup(cred!, 27), true, 'in a supplementary group');
  t.equal(peerInGroup(cred!, 0), false, 'not in group 0');
});

t.test('peerInGroup: supplementary groups count, others do not', async (t) => {
  const cred: PeerCred = { pid: 1234, uid: 1000, gid: 1000, groups: [4, 27, 997] };
  t.equal(peerInGroup(cred, 997), true, 'supplementary group');
  t.equal(peerInGroup(cred, 1000), true, 'primary group');
  t.equal(peerInGroup(cred, 0), false, 'not root, not in group 0');
  t.equal(peerInGroup(cred, 998), false, 'unrelated group');
});

t.test('a TCP socket: no crash, and no credentials to misread', async (t) => {
  const { server, next } = credServer();
  await listen(server, { host: '127.0.0.1', port: 0 });
  t.teardown(() => new Promise<void>((r) => server.close(() => r())));
  const client = createConnection((server.address() as AddressInfo).port, '127.0.0.1');
  client.on('error', () => {});
  client.resume();
  const { cred, threw, sock } = await next();
  client.destroy();
  t.equal(threw, undefined, 'peerCred does not throw on a TCP socket');
  if (cred === null) t.pass('null for TCP');
  else t.equal(cred.uid, process.getuid!(), 'if anything, the right uid');
  await new Promise((r) => (sock.destroyed ? r(null) : sock.once('close', r)));
  t.doesNotThrow(() => peerCred(sock), 'nor on a closed socket');
  t.equal(peerCred(sock), null, 'a closed socket has no fd: null');
});
