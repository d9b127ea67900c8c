/**
 * `npm start`: the recorder on its embedded default (a virtual card playing real speech, data under
 * ./var/) with a built-in PBX simulator placing calls. Ctrl-C finalises every open recording.
 */
import { randomBytes } from 'node:crypto';
import { loadConfig, demoConfigPath } from '../daemon/config/loadConfig.js';
import { createLogger } from '../daemon/ops/logger.js';
import { Daemon } from '../daemon/Daemon.js';
import { PbxSimulator } from '../daemon/sim/PbxSimulator.js';
import { disableCoreDumps } from '../native/libc.js';

process.umask(0o027);
disableCoreDumps();
const cfg = loadConfig(process.env.CALLREC_CONFIG ?? demoConfigPath);
const log = createLogger(cfg.log.level, 2);
const daemon = new Daemon(cfg, log);
await daemon.start();
const url = `http://${daemon.pbxAddress.host}:${daemon.pbxAddress.port}/pbx/v1/events`;
const say = (s: string): void => void process.stdout.write(`${s}\n`);
say('callrec demo: recording a virtual card of real speech, calls placed by a built-in PBX simulator.');
say(`  PBX signals: POST ${url}  (Authorization: Bearer ${cfg.signals.token})`);
say(`  health:      http://${daemon.adminAddress.host}:${daemon.adminAddress.port}/health   metrics: /metrics`);
say(`  data:        ${cfg.dataDir}`);
// A demo manager with a fresh password each start (the accounts of an installation are personal:
// docs/security.md); a technician too, so the README's `status` and `verify` work with the one login.
const password = randomBytes(12).toString('base64url');
await daemon.services.users.provision({ user: null, roles: [], via: 'system', from: 'demo' }, { username: 'demo.manager', displayName: 'Demo Manager', roles: ['manager', 'technician'], password });
say(`  log in:      user demo.manager   password ${password}`);
say(`  API:         http://${daemon.adminAddress.host}:${daemon.adminAddress.port}/api/v1  (docs/api.md)`);
say(`  In another terminal:  export CALLREC_SOCKET=${cfg.control.socket}`);
say('                        npx callrec login demo.manager');
say('                        npx callrec calls list');
say('                        npx callrec calls export ID --format opus -o call.opus');
say('  Ctrl-C stops: open recordings are finalised.\n');

daemon.calls.finished.push((m) => {
  say(`recorded ${m.id}  line ${m.line}  ${(m.durationMs! / 1000).toFixed(1)} s  ${m.status}${m.flags.length ? ` [${m.flags.join(', ')}]` : ''}`);
});
const sim = new PbxSimulator({ url, token: cfg.signals.token, lines: daemon.path.lineIds(), intervalMs: 3000, minCallMs: 6000, maxCallMs: 16000 });
sim.start();

let stopping = false;
const stop = async (): Promise<void> => {
  if (stopping) return;
  stopping = true;
  say('\nstopping: finalising open recordings...');
  await sim.stop();
  await daemon.stop();
  say('stopped.');
  setTimeout(() => process.exit(0), 50);
};
process.on('SIGINT', () => void stop());
process.on('SIGTERM', () => void stop());
