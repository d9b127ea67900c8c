import t from 'tap';
import { cliLogin } from './helpers/people.js';
import { execFile, spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { createInterface } from 'node:readline';
import { promisify } from 'node:util';
import { parse, stringify } from 'yaml';
import { opusinfo } from './helpers/oggTools.js';

const run = promisify(execFile);

t.test('the demo records at least three calls within 60 s that export as valid Ogg Opus, and Ctrl-C stops it cleanly', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'callrec-demo-'));
  const cfg = parse(readFileSync('config/demo.yaml', 'utf8'));
  Object.assign(cfg, { dataDir: join(dir, 'data'), control: { socket: join(dir, 'callrec.sock') }, keys: { masterFile: join(dir, 'master.key'), createMasterFile: true } });
  cfg.signals.port = 0;
  cfg.admin.port = 0;
  const cfgFile = join(dir, 'demo.yaml');
  writeFileSync(cfgFile, stringify(cfg));
  const started = performance.now();
  const demo = spawn(process.execPath, [resolve('dist/scripts/demo.js')], { env: { ...process.env, CALLREC_CONFIG: cfgFile }, stdio: ['ignore', 'pipe', 'pipe'] });
  const ids: string[] = [];
  const out: string[] = [];
  const three = new Promise<void>((res, rej) => {
    const timer = setTimeout(() => rej(new Error(`fewer than three recordings in 60 s:\n${out.join('\n')}`)), 60_000);
    createInterface({ input: demo.stdout! }).on('line', (line) => {
      out.push(line);
      const m = /^recorded (\S+)\s+line (\S+)\s+([\d.]+) s\s+complete/.exec(line);
      if (m) ids.push(m[1]!);
      if (ids.length === 3) {
        clearTimeout(timer);
        res();
      }
    });
  });
  await three;
  t.ok(performance.now() - started < 60_000, `three recordings after ${((performance.now() - started) / 1000).toFixed(1)} s`);
  t.match(out.join('\n'), /export CALLREC_SOCKET=/, 'prints the line to export for the CLI');
  t.match(out.join('\n'), /Authorization: Bearer demo-pbx-token-not-secret/, 'prints the PBX token');
  const creds = /log in:\s+user (\S+)\s+password (\S+)/.exec(out.join('\n'));
  t.ok(creds, 'prints the demo manager\'s user name and password');
  const session = await cliLogin(join(dir, 'callrec.sock'), creds![1]!, creds![2]!);
  for (const id of ids) {
    const file = join(dir, `${id}.opus`);
    await run(process.execPath, [resolve('dist/daemon/bin/callrec.js'), 'calls', 'export', id, '--format', 'opus', '-o', file], { env: { ...process.env, ...session, CALLREC_SOCKET: join(dir, 'callrec.sock') } });
    const info = opusinfo(file);
    t.same(info.problems, [], `${id}: opusinfo, no warnings`);
    t.ok(info.playbackS! > 1, `${id}: plays ${info.playbackS} s`);
  }
  demo.kill('SIGINT');
  const code = await new Promise((r) => demo.once('exit', r));
  t.equal(code, 0, 'Ctrl-C: exit 0');
  t.match(out.join('\n'), /stopped\./);
});
