import t from 'tap';
import type { VirtualCard } from '../daemon/capture/VirtualCard.js';
import type { RecordingMeta } from '../daemon/store/RecordingMeta.js';
import { signal, sleep, startFields, startTestDaemon, waitFor } from './helpers/testDaemon.js';

t.test('a card that fails mid-call is reopened; the call keeps recording and notes the gap', async (t) => {
  const td = await startTestDaemon();
  t.teardown(() => td.stop());
  await sleep(500);
  const start = signal('start', 'fault-1', startFields('L1'));
  const r = await td.post(start);
  await sleep(500);
  const card = td.daemon.path.deviceOf('v0') as VirtualCard;
  const failedAt = Date.now();
  card.fail('simulated unplug');
  t.equal((await td.daemon.status()).cards[0]!.faulted, true, 'status shows the fault');
  await waitFor(async () => !(await td.daemon.status()).cards[0]!.faulted, 8000);
  const back = Date.now() - failedAt;
  await sleep(500);
  const end = signal('end', 'fault-1');
  await td.post(end);
  const m = await waitFor(async () => {
    const x = (await td.daemon.store.get(r.json.recordingId)) as RecordingMeta;
    return x.audioSha256 ? x : null;
  });
  t.equal(m.status, 'complete');
  t.equal(m.gaps.length, 1, 'one gap');
  t.ok(Math.abs(m.gaps[0]!.ms - back) <= 300, `gap ${m.gaps[0]!.ms} ms for ${back} ms without the card`);
  t.ok(m.flags.includes('gaps'));
  const signalled = Date.parse(end.at as string) - Date.parse(start.at as string);
  t.ok(Math.abs(m.durationMs! - signalled) <= 40, `duration ${m.durationMs} ms still = end - start (${signalled} ms)`);
});
