import t from 'tap';
import { startTestDaemon } from './helpers/testDaemon.js';
import type { RecordingMeta } from '../daemon/store/RecordingMeta.js';
import type { RecordingQuery } from '../daemon/store/RecordingStore.js';

// Searches with one, two and three filters against a brute-force filter over the same records,
// across three months (three epochs), page by page.
const td = await startTestDaemon();
t.teardown(() => td.stop());

const base: RecordingMeta = {
  id: '', callId: '', line: 'L1', startedAt: '', endedAt: null, durationMs: 1000, caller: '', callerNormalized: null,
  callerClass: 'number', callerPresentation: 'allowed', serviceNumber: '', agentId: null, agentName: null, status: 'complete',
  flags: [], gaps: [], codec: { name: 'opus', sampleRate: 8000, channels: 1, bitrate: 16000, complexity: 5 },
  audioBytes: 1, audioSha256: null, storedBytes: null, storedSha256: null,
};
const callers = ['+358401110001', '+358401110002', '+358401110003'];
const agents = ['ag.one', 'ag.two', null];
const services = ['029 1', '029 2'];
const all: RecordingMeta[] = [];
const CROCKFORD = '0123456789ABCDEFGHJKMNPQRSTVWXYZ';
for (let i = 0; i < 240; i++) {
  const id = `01S${[...String(i).padStart(23, '0')].map((d) => CROCKFORD[Number(d)]).join('')}`;
  const month = i % 3;
  const m: RecordingMeta = {
    ...base,
    id,
    callId: `c${i}`,
    startedAt: new Date(Date.UTC(2026, 8 + month, 1 + (i % 27), 8, i % 60)).toISOString(),
    caller: callers[i % 3]!,
    callerNormalized: callers[i % 3]!,
    agentId: agents[(i >> 1) % 3]!,
    serviceNumber: services[(i >> 2) % 2]!,
  };
  all.push(m);
  await td.daemon.store.create(m);
}
const byStart = [...all].sort((a, b) => (a.startedAt === b.startedAt ? (a.id < b.id ? -1 : 1) : a.startedAt < b.startedAt ? -1 : 1));

t.test('every combination of caller, adviser and service filters, with and without a time range, paged by 7, both orders', async (t) => {
  let checked = 0;
  for (const caller of [undefined, ...callers]) {
    for (const agentId of [undefined, 'ag.one', 'ag.two']) {
      for (const serviceNumber of [undefined, ...services]) {
        for (const range of [{}, { from: '2026-10-01T00:00:00.000Z', to: '2026-11-15T00:00:00.000Z' }]) {
          const q: RecordingQuery = { ...range, ...(caller ? { caller } : {}), ...(agentId ? { agentId } : {}), ...(serviceNumber ? { serviceNumber } : {}) };
          const want = byStart.filter((m) => (!caller || m.callerNormalized === caller) && (!agentId || m.agentId === agentId) && (!serviceNumber || m.serviceNumber === serviceNumber) && (!('from' in range) || (m.startedAt >= range.from! && m.startedAt < range.to!))).map((m) => m.id);
          const got: string[] = [];
          let after = null;
          for (let pages = 0; pages < 100; pages++) {
            const p = await td.daemon.store.page(q, after, 7);
            got.push(...p.records.map((m) => m.id));
            if (!p.last) break;
            after = p.last;
          }
          t.same(got, want, JSON.stringify(q));
          const back: string[] = [];
          let before = null;
          for (let pages = 0; pages < 100; pages++) {
            const p = await td.daemon.store.page(q, before, 7, () => true, 'desc');
            back.push(...p.records.map((m) => m.id));
            if (!p.last) break;
            before = p.last;
          }
          t.same(back, [...want].reverse(), `${JSON.stringify(q)}, newest first`);
          checked++;
        }
      }
    }
  }
  t.equal(checked, 4 * 3 * 3 * 2);
});

t.test('an index entry without its value (written before values existed) is still found', async (t) => {
  const db = td.daemon.store['indexes'].agent;
  const keys: string[] = [];
  for await (const k of db.keys()) keys.push(k);
  for (const k of keys) await db.put(k, '');
  const p = await td.daemon.store.page({ agentId: 'ag.one', serviceNumber: '029 2' }, null, 1000);
  t.same(p.records.map((m) => m.id), byStart.filter((m) => m.agentId === 'ag.one' && m.serviceNumber === '029 2').map((m) => m.id));
});
