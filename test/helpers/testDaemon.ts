import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pino from 'pino';
import { parseConfig } from '../../daemon/config/loadConfig.js';
import type { Config } from '../../daemon/config/Config.js';
import { Daemon } from '../../daemon/Daemon.js';
import { stringify } from 'yaml';
import type { Actor } from '../../daemon/access/Actor.js';
import type { Role } from '../../daemon/access/permissions.js';

export const TOKEN = 'test-token-0123456789abcdef';

/**
 * A person as the services see one, for tests that drive the service layer in-process (the doors'
 * own tests log in for real): by default a manager who is also a technician.
 */
export function testActor(roles: Role[] = ['manager', 'technician'], agentId: string | null = null): Actor {
  return { userId: `test-${roles.join('-')}`, username: `test.${roles.join('.')}`, roles, agentId, via: 'cli', from: 'uid:0', sessionId: 'test' };
}

export interface TestDaemon {
  daemon: Daemon;
  cfg: Config;
  dir: string;
  url: string;
  /** POSTs a signal; returns HTTP status and parsed JSON answer. */
  post(body: unknown, opts?: { token?: string | null; raw?: string | Buffer }): Promise<{ status: number; json: any }>;
  stop(): Promise<void>;
}

/** A real daemon (virtual card unless the overrides say otherwise) on loopback, data in a temp dir. */
export async function startTestDaemon(overrides: Record<string, unknown> = {}): Promise<TestDaemon> {
  const dir = mkdtempSync(join(tmpdir(), 'callrec-test-'));
  const base = {
    dataDir: join(dir, 'data'),
    cards: [{ id: 'v0', backend: 'virtual', channels: 4, sampleRate: 8000, readMs: 20 }],
    lines: [
      { id: 'L1', card: 'v0', channels: [0] },
      { id: 'L2', card: 'v0', channels: [1] },
      { id: 'L3', card: 'v0', channels: [2, 3] },
    ],
    encode: { workers: 2 },
    recording: { maxDurationS: 3600, endReconcileMs: 1000 },
    signals: { host: '127.0.0.1', port: 0, token: TOKEN },
    control: { socket: join(dir, 'callrec.sock') },
    keys: { masterFile: join(dir, 'master.key'), createMasterFile: true },
    storage: { requireEncryptedDisk: false, reserveMb: 8, floorMb: 1 },
    admin: { port: 0 },
    log: { level: 'silent' },
    ...overrides,
  };
  const cfg = parseConfig(stringify(base), join(dir, 'config.yaml'));
  const log = pino({ level: process.env.CALLREC_TEST_LOG ?? 'silent' });
  const daemon = new Daemon(cfg, log);
  await daemon.start();
  const url = `http://127.0.0.1:${daemon.pbxAddress.port}/pbx/v1/events`;
  let stopped = false;
  return {
    daemon,
    cfg,
    dir,
    url,
    async post(body, opts = {}) {
      const headers: Record<string, string> = { 'content-type': 'application/json' };
      const token = opts.token === undefined ? TOKEN : opts.token;
      if (token !== null) headers.authorization = `Bearer ${token}`;
      const res = await fetch(url, { method: 'POST', headers, body: opts.raw ?? JSON.stringify(body) });
      const text = await res.text();
      return { status: res.status, json: text ? JSON.parse(text) : null };
    },
    async stop() {
      if (stopped) return;
      stopped = true;
      await daemon.stop();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

let seq = 0;
/** A signal with a fresh event id and `at` = now (or the given time). */
export function signal(type: 'start' | 'answer' | 'end', callId: string, extra: Record<string, unknown> = {}, at: Date = new Date()): Record<string, unknown> {
  return { id: `ev-${process.pid}-${++seq}`, type, callId, at: at.toISOString(), ...extra };
}

export const startFields = (line: string, caller = '+358 40 555 0100'): Record<string, unknown> => ({ line, caller, serviceNumber: '029 497 002' });

export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** Waits until `fn` returns a truthy value (polling), or fails after `ms`. */
export async function waitFor<T>(fn: () => Promise<T | null | undefined | false> | T | null | undefined | false, ms = 10000): Promise<T> {
  const until = Date.now() + ms;
  for (;;) {
    const v = await fn();
    if (v) return v;
    if (Date.now() > until) throw new Error('timed out waiting');
    await sleep(50);
  }
}
