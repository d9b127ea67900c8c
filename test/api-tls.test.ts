import t from 'tap';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync } from 'node:fs';
import { request } from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startTestDaemon } from './helpers/testDaemon.js';
import { PASSWORD, people } from './helpers/people.js';

// A throwaway self-signed certificate for 127.0.0.1.
const dir = mkdtempSync(join(tmpdir(), 'callrec-tls-'));
const cert = join(dir, 'cert.pem');
const key = join(dir, 'key.pem');
execFileSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-days', '1', '-subj', '/CN=127.0.0.1', '-addext', 'subjectAltName=IP:127.0.0.1', '-keyout', key, '-out', cert], { stdio: 'ignore' });

const td = await startTestDaemon({ admin: { port: 0, tls: { certFile: cert, keyFile: key } } });
t.teardown(() => td.stop());
await people(td.cfg.control.socket, [{ username: 'maria.manager', roles: ['manager'] }]);

function https(method: string, path: string, body?: unknown): Promise<{ status: number; headers: Record<string, string | string[] | undefined>; text: string }> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port: td.daemon.adminAddress.port, method, path, ca: readFileSync(cert), headers: body ? { 'content-type': 'application/json' } : {} }, (res) => {
      let text = '';
      res.on('data', (d: Buffer) => (text += d.toString()));
      res.on('end', () => resolve({ status: res.statusCode!, headers: res.headers, text }));
    });
    req.on('error', reject);
    req.end(body ? JSON.stringify(body) : undefined);
  });
}

t.test('with admin.tls: HTTPS, HSTS, upgrade-insecure-requests and a Secure cookie', async (t) => {
  const h = await https('GET', '/health');
  t.equal(h.status, 200);
  t.match(h.headers['strict-transport-security'], /max-age=31536000/);
  t.match(h.headers['content-security-policy'], /upgrade-insecure-requests/);
  const login = await https('POST', '/api/v1/sessions', { username: 'maria.manager', password: PASSWORD });
  t.equal(login.status, 201);
  t.match(String(login.headers['set-cookie']), /; Secure/);
  const plain = await fetch(`http://127.0.0.1:${td.daemon.adminAddress.port}/health`).then(() => 'answered', () => 'refused');
  t.equal(plain, 'refused', 'no plain HTTP on the TLS port');
});

t.test('a missing certificate file is a clear config error', async (t) => {
  await t.rejects(startTestDaemon({ admin: { port: 0, tls: { certFile: join(dir, 'nope.pem'), keyFile: key } } }), /admin\.tls: no such file: .*nope\.pem/);
});
