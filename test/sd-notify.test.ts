import t from 'tap';
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { createInterface } from 'node:readline';
import { stringify } from 'yaml';
import { sdNotify } from '../native/sdNotify.js';
import { waitFor } from './helpers/testDaemon.js';

/** A stand-in for systemd's notify socket: a Unix datagram socket (python3, as Node has none) printing each message. */
function notifyReceiver(path: string): { child: ChildProcess; messages: string[]; ready: Promise<void> } {
  const code = `import socket,sys
s=socket.socket(socket.AF_UNIX,socket.SOCK_DGRAM)
s.bind(sys.argv[1])
print("listening",flush=True)
while True:
    d=s.recv(4096).decode()
    print(d.replace("\\n","|"),flush=True)`;
  const child = spawn('python3', ['-c', code, path], { stdio: ['ignore', 'pipe', 'inherit'] });
  const messages: string[] = [];
  let onReady: () => void;
  const ready = new Promise<void>((r) => (onReady = r));
  createInterface({ input: child.stdout! }).on('line', (l) => (l === 'listening' ? onReady() : messages.push(l)));
  return { child, messages, ready };
}

t.test('callrecd tells systemd READY, STATUS, WATCHDOG and STOPPING', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'callrec-notify-'));
  const sock = join(dir, 'notify');
  const rx = notifyReceiver(sock);
  t.teardown(() => void rx.child.kill());
  await rx.ready;
  const cfgFile = join(dir, 'c.yaml');
  writeFileSync(cfgFile, stringify({
    dataDir: join(dir, 'data'),
    cards: [{ id: 'v', backend: 'virtual', channels: 2 }],
    lines: [{ id: 'L1', card: 'v', channels: [0] }, { id: 'L2', card: 'v', channels: [1] }],
    signals: { port: 0, token: 'notify-test-token-0123456789' },
    control: { socket: join(dir, 's.sock') },
    keys: { masterFile: join(dir, 'k'), createMasterFile: true },
    storage: { requireEncryptedDisk: false, reserveMb: 8, floorMb: 1 },
    admin: { port: 0 },
  }));
  const daemon = spawn(process.execPath, [resolve('dist/daemon/bin/callrecd.js'), '--config', cfgFile], { env: { ...process.env, NOTIFY_SOCKET: sock, WATCHDOG_USEC: '600000' }, stdio: 'ignore' });
  await waitFor(() => rx.messages.filter((m) => m === 'WATCHDOG=1').length >= 2, 10000);
  t.ok(rx.messages.includes('READY=1'), 'READY=1');
  t.ok(rx.messages.includes('STATUS=recording 0 of 2 lines'), 'STATUS says what it records');
  t.ok(rx.messages.indexOf('READY=1') < rx.messages.indexOf('WATCHDOG=1'), 'ready before the first watchdog ping');
  daemon.kill('SIGTERM');
  const code = await new Promise((r) => daemon.once('exit', r));
  t.equal(code, 0);
  await waitFor(() => rx.messages.includes('STOPPING=1'), 3000);
  t.pass('STOPPING=1');
});

t.test('without libsystemd, the datagram goes to NOTIFY_SOCKET by hand', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'callrec-notify-'));
  const sock = join(dir, 'notify');
  const rx = notifyReceiver(sock);
  t.teardown(() => void rx.child.kill());
  await rx.ready;
  const saved = process.env.NOTIFY_SOCKET;
  process.env.NOTIFY_SOCKET = sock;
  t.teardown(() => void (saved === undefined ? delete process.env.NOTIFY_SOCKET : (process.env.NOTIFY_SOCKET = saved)));
  t.ok(sdNotify('STATUS=by hand\nX=1', { forceSocket: true }));
  await waitFor(() => rx.messages.includes('STATUS=by hand|X=1'), 3000);
  t.pass('received');
  delete process.env.NOTIFY_SOCKET;
  t.equal(sdNotify('READY=1'), false, 'not under systemd: a no-op');
});
