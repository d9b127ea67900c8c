import t from 'tap';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, statfsSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { RecordingMeta } from '../daemon/store/RecordingMeta.js';
import { opusinfo } from './helpers/oggTools.js';
import { signal, sleep, startFields, startTestDaemon, waitFor, testActor } from './helpers/testDaemon.js';

// A real small filesystem: an 8 MiB tmpfs mounted for this test (root is needed, as in CI).
const mnt = mkdtempSync(join(tmpdir(), 'callrec-tmpfs-'));
try {
  execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=8m,mode=0750', 'tmpfs', mnt], { stdio: 'pipe' });
} catch (err) {
  throw new Error(`the disk-full test mounts an 8 MiB tmpfs and needs root (mount -t tmpfs): ${(err as Error).message}`);
}
t.teardown(() => execFileSync('umount', ['-l', mnt]));
const free = (): number => {
  const s = statfsSync(mnt);
  return s.bavail * s.bsize;
};
const filler = join(mnt, 'filler');
/** Grows or shrinks the filler file until `bytes` are left free. */
const leaveFree = (bytes: number): void => {
  rmSync(filler, { force: true });
  writeFileSync(filler, Buffer.alloc(Math.max(0, free() - bytes)));
};

const td = await startTestDaemon({ dataDir: join(mnt, 'data'), storage: { requireEncryptedDisk: false, reserveMb: 3, floorMb: 1.5 } });
t.teardown(() => td.stop());
const done = (id: string): Promise<RecordingMeta> => waitFor(async () => {
  const m = (await td.daemon.store.get(id)) as RecordingMeta;
  return m.status !== 'recording' && m.storedSha256 ? m : null;
});

t.test('below the reserve new calls are not recorded; below the floor open ones close cleanly; recording resumes', async (t) => {
  await sleep(300);
  const a = await td.post(signal('start', 'disk-a', startFields('L1')));
  t.ok(a.json.recordingId, 'plenty of space: recorded');
  await sleep(1000);

  leaveFree(2.2 * 2 ** 20);
  await waitFor(() => td.daemon.disk.state === 'low', 5000);
  const b = await td.post(signal('start', 'disk-b', startFields('L2')));
  t.same(b.json, { status: 'accepted', recordingId: null }, 'below the reserve: accepted, not recorded');
  t.same((await td.post(signal('end', 'disk-b'))).json, { status: 'accepted', recordingId: null });
  t.ok(td.daemon.alarms.list().some((x) => x.code === 'DISK_RESERVE' && x.severity === 'critical'), 'alarm raised');
  t.equal((await td.daemon.store.get(a.json.recordingId))!.status, 'recording', 'the call in progress goes on');

  leaveFree(1 * 2 ** 20);
  const ma = await done(a.json.recordingId);
  t.equal(ma.status, 'truncated_disk_full', 'below the floor: closed');
  t.ok(ma.flags.includes('disk_full'));
  const file = join(tmpdir(), `${ma.id}.opus`);
  writeFileSync(file, await td.daemon.service.export(testActor(), ma.id, 'opus'));
  t.same(opusinfo(file).problems, [], 'a valid file with end-of-stream');
  rmSync(file);
  t.ok(ma.durationMs! > 1000, `${ma.durationMs} ms kept`);

  rmSync(filler);
  await waitFor(() => td.daemon.disk.state === 'ok', 5000);
  const c = await td.post(signal('start', 'disk-c', startFields('L3')));
  t.ok(c.json.recordingId, 'space back: recording resumes by itself');
  await sleep(600);
  await td.post(signal('end', 'disk-c'));
  t.equal((await done(c.json.recordingId)).status, 'complete');
  t.notOk(td.daemon.alarms.list().some((x) => x.code === 'DISK_RESERVE'), 'alarm cleared');

  // A sudden fill to nothing (faster than the guard's one-second look): writes fail with ENOSPC. The
  // recording is closed and repaired once there is room to write the repair, never left torn.
  const d = await td.post(signal('start', 'disk-d', startFields('L1')));
  await sleep(1500);
  leaveFree(0);
  await sleep(2500);
  t.equal((await td.daemon.store.get(d.json.recordingId))!.status, 'recording', 'no room even to repair: still open, not torn-and-forgotten');
  rmSync(filler);
  const md = await done(d.json.recordingId);
  t.equal(md.status, 'truncated_disk_full');
  t.ok(md.flags.includes('disk_full') && md.flags.includes('repaired'), md.flags.join(','));
  const file2 = join(tmpdir(), `${md.id}.opus`);
  writeFileSync(file2, await td.daemon.service.export(testActor(), md.id, 'opus'));
  t.same(opusinfo(file2).problems, [], 'and plays');
  rmSync(file2);
  t.ok((await td.daemon.service.verify(testActor(), md.id)).ok);

  const metrics = await td.daemon.metrics.registry.metrics();
  t.match(metrics, /callrec_calls_not_recorded_total\{reason="disk_low"\} 1/);
});
