import t from 'tap';
import { Writable } from 'node:stream';
import type { AddressInfo } from 'node:net';
import express from 'express';
import { pino } from 'pino';
import { requestLog } from '../daemon/ops/requestLog.js';

t.test('the request log names the route matched, never the path as sent (it may hold a number or a password)', async (t) => {
  const lines: Array<Record<string, unknown>> = [];
  const sink = new Writable({
    write(chunk: Buffer, _enc, done) {
      for (const l of chunk.toString('utf8').split('\n').filter(Boolean)) lines.push(JSON.parse(l) as Record<string, unknown>);
      done();
    },
  });
  const app = express();
  app.use(requestLog(pino(sink), 'admin'));
  app.get('/health', (_req, res) => void res.json({ ok: true }));
  const v1 = express.Router();
  v1.get('/calls/:id', async (req, res) => {
    await new Promise((r) => setTimeout(r, 5)); // answered later, as the real routes are
    res.status(404).json({ error: { code: 'not_found' } });
  });
  app.use('/api/v1', v1);
  const server = app.listen(0, '127.0.0.1');
  await new Promise((r) => server.once('listening', r));
  t.teardown(() => void server.close());
  const base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  for (const path of ['/health', '/api/v1/calls/0405550100', '/api/v1/users/Typed-Secret-Word/x?caller=0405550100']) await (await fetch(base + path)).arrayBuffer();
  await new Promise((r) => setTimeout(r, 20));
  const requests = lines.filter((l) => l.msg === 'request');
  t.same(requests.map((l) => [l.route, l.status]), [['/health', 200], ['/api/v1/calls/:id', 404], ['(no route)', 404]]);
  const all = JSON.stringify(lines);
  for (const needle of ['0405550100', 'Typed-Secret-Word']) t.notOk(all.includes(needle), `no ${needle} in the log`);
});
