#!/usr/bin/env node
import { parseArgs } from 'node:util';
import { configWarnings, loadConfig, ConfigError, PLACEHOLDER_TOKEN } from '../config/loadConfig.js';
import { createLogger } from '../ops/logger.js';
import { Daemon } from '../Daemon.js';
import { disableCoreDumps, separateNativeStdout } from '../../native/libc.js';
import { sdNotify, watchdogIntervalMs } from '../../native/sdNotify.js';

const USAGE = 'usage: callrecd --config FILE | callrecd --check-config FILE';

async function main(): Promise<number> {
  let args;
  try {
    args = parseArgs({ options: { config: { type: 'string' }, 'check-config': { type: 'string' }, help: { type: 'boolean' } } }).values;
  } catch (err) {
    process.stderr.write(`${(err as Error).message}\n${USAGE}\n`);
    return 2;
  }
  if (args.help) {
    process.stdout.write(`${USAGE}\n`);
    return 0;
  }
  const file = args['check-config'] ?? args.config;
  if (!file) {
    process.stderr.write(`${USAGE}\n`);
    return 2;
  }
  let cfg;
  try {
    cfg = loadConfig(file);
  } catch (err) {
    if (err instanceof ConfigError) {
      process.stderr.write(`${err.message}\n`);
      return 1;
    }
    throw err;
  }
  if (args['check-config']) {
    process.stdout.write(`${file}: valid\n`);
    for (const w of configWarnings(cfg)) process.stdout.write(`warning: ${w}\n`);
    return 0;
  }
  if (PLACEHOLDER_TOKEN.test(cfg.signals.token)) {
    process.stderr.write(`callrecd: ${file}: ${configWarnings(cfg)[0]}\n`);
    return 1;
  }
  // Files 0640 and folders 0750 (LevelDB's too): recordings are personal data.
  process.umask(0o027);
  // Keys live in this process: no core dump may carry them away.
  const noDumps = disableCoreDumps();
  const log = createLogger(cfg.log.level, separateNativeStdout());
  if (!noDumps) log.warn('could not disable core dumps: keys could end up in a dump');
  const daemon = new Daemon(cfg, log);
  try {
    await daemon.start();
  } catch (err) {
    log.fatal({ err: (err as Error).message }, 'callrecd could not start');
    await daemon.stop().catch(() => undefined);
    return 1;
  }
  sdNotify('READY=1');
  // STATUS for `systemctl status`, and the watchdog's ping at half its interval.
  const statusTimer = setInterval(() => {
    sdNotify(`STATUS=recording ${daemon.calls.activeCount} of ${daemon.path.lineIds().length} lines${daemon.alarms.summary()}`);
  }, 5000);
  statusTimer.unref();
  const watchdogMs = watchdogIntervalMs();
  const watchdogTimer = watchdogMs ? setInterval(() => sdNotify('WATCHDOG=1'), watchdogMs / 2) : undefined;
  watchdogTimer?.unref();
  sdNotify(`STATUS=recording 0 of ${daemon.path.lineIds().length} lines`);
  return new Promise<number>((resolve) => {
    const stop = (signal: string): void => {
      log.info({ signal }, 'stopping: finalising open recordings');
      sdNotify('STOPPING=1');
      clearInterval(statusTimer);
      clearInterval(watchdogTimer);
      daemon.stop().then(
        () => resolve(0),
        (err: Error) => {
          log.error({ err: err.message }, 'unclean stop');
          resolve(1);
        },
      );
    };
    process.on('SIGHUP', () => {
      try {
        daemon.reload(loadConfig(file));
      } catch (err) {
        // The old configuration stays in force.
        log.error({ err: (err as Error).message }, 'config reload rejected: the running configuration is kept');
      }
    });
    process.once('SIGTERM', () => stop('SIGTERM'));
    process.once('SIGINT', () => stop('SIGINT'));
  });
}

main().then(
  (code) => setTimeout(() => process.exit(code), 50),
  (err: Error) => {
    process.stderr.write(`callrecd: ${err.stack ?? err.message}\n`);
    process.exit(1);
  },
);
