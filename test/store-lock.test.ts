import t from 'tap';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { EpochKeyStore } from '../daemon/keys/EpochKeyStore.js';
import { KeyRing } from '../daemon/keys/KeyRing.js';
import { loadMasterKeys } from '../daemon/keys/MasterKey.js';
import { RecordingStore } from '../daemon/store/RecordingStore.js';

const dir = mkdtempSync(join(tmpdir(), 'callrec-lock-'));
const keys = new KeyRing(new EpochKeyStore(join(dir, 'epochs.json'), loadMasterKeys({ credential: 'x', file: join(dir, 'k'), create: true })));
const sidecar = (id: string): string => join(dir, `${id}.meta`);

t.test('a lock released within the wait is waited for; one held throughout is refused clearly', async (t) => {
  const first = await RecordingStore.open(join(dir, 'index'), keys, sidecar);
  const t0 = Date.now();
  setTimeout(() => void first.close(), 700);
  const second = await RecordingStore.open(join(dir, 'index'), keys, sidecar, 5000);
  t.ok(Date.now() - t0 >= 650, `waited ${Date.now() - t0} ms for the first to let go`);
  const t1 = Date.now();
  await t.rejects(RecordingStore.open(join(dir, 'index'), keys, sidecar, 800), /is locked: another callrecd is running with this dataDir \(waited \d+ s\)/);
  t.ok(Date.now() - t1 < 2000, 'and gave up after its wait');
  await second.close();
});
