import t from 'tap';
import { spawn } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { createInterface } from 'node:readline';
import { stringify } from 'yaml';
import { waitFor } from './helpers/testDaemon.js';

t.test('SIGHUP applies what can change live, keeps the rest, and rejects a bad config keeping the old', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'callrec-reload-'));
  const cfgFile = join(dir, 'c.yaml');
  const base = {
    dataDir: join(dir, 'data'),
    cards: [{ id: 'v', backend: 'virtual', channels: 1 }],
    lines: [{ id: 'L1', card: 'v', channels: [0] }],
    signals: { port: 0, token: 'reload-token-0123456789' },
    control: { socket: join(dir, 's.sock') },
    keys: { masterFile: join(dir, 'k'), createMasterFile: true },
    storage: { requireEncryptedDisk: false, reserveMb: 8, floorMb: 1 },
    admin: { port: 0 },
    alarms: { diskWarnPercent: 0, diskCriticalPercent: 0 },
  };
  writeFileSync(cfgFile, stringify(base));
  const child = spawn(process.execPath, [resolve('dist/daemon/bin/callrecd.js'), '--config', cfgFile], { stdio: ['ignore', 'pipe', 'ignore'] });
  t.teardown(() => void child.kill('SIGTERM'));
  const logs: any[] = [];
  createInterface({ input: child.stdout! }).on('line', (l) => logs.push(JSON.parse(l)));
  const ready = await waitFor(() => logs.find((l) => l.msg === 'callrecd ready'));
  const health = async (): Promise<any> => (await fetch(`http://127.0.0.1:${ready.admin.port}/health`)).json();
  t.notOk((await health()).alarms.some((a: any) => a.code === 'DISK_LOW'));

  writeFileSync(cfgFile, stringify({ ...base, alarms: { diskWarnPercent: 100, diskCriticalPercent: 0 }, encode: { bitrate: 24000 } }));
  child.kill('SIGHUP');
  const reloaded = await waitFor(() => logs.find((l) => l.msg?.startsWith('config reloaded')));
  t.same(reloaded.applied, ['alarms']);
  t.same(reloaded.needsRestart, ['encode'], 'a codec change waits for a restart, and says so');
  t.ok((await health()).alarms.some((a: any) => a.code === 'DISK_LOW'), 'the new threshold is in force');

  writeFileSync(cfgFile, 'cards: [\n');
  child.kill('SIGHUP');
  const rejected = await waitFor(() => logs.find((l) => l.msg === 'config reload rejected: the running configuration is kept'));
  t.match(rejected.err, /YAML/);
  t.ok((await health()).alarms.some((a: any) => a.code === 'DISK_LOW'), 'still running, on the old configuration');
  child.kill('SIGTERM');
  t.equal(await new Promise((r) => child.once('exit', r)), 0);
});
