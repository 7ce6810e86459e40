// The native checkers against real TCP, HTTP, HTTPS and UDP servers and real ICMP, inside a
// throwaway network namespace (the driver runs there, servers and targets included).
import { execFileSync, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import t from 'tap';
import { nftNamespace } from '../helpers/netns.js';

const HERE = path.dirname(fileURLToPath(import.meta.url));
const DIST = path.resolve(HERE, '../../dist');

interface Result {
  ok: boolean;
  reason: string;
  latencyMs: number;
}

t.test('each checker tells up from down, with a reason and a latency', async (t) => {
  const ns = nftNamespace(t, 'nfhck');
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'nfhck-'));
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));
  const cert = path.join(dir, 'cert.pem');
  const key = path.join(dir, 'key.pem');
  execFileSync('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-subj', '/CN=backend', '-days', '1', '-keyout', key, '-out', cert], { stdio: 'ignore' });

  const env = { ...process.env };
  delete env.NODE_OPTIONS;
  const r = spawnSync('ip', ['netns', 'exec', ns.ns, process.execPath, path.join(HERE, 'fixtures/checkers-driver.mjs'), DIST, cert, key], {
    encoding: 'utf8',
    env,
    timeout: 30_000,
  });
  if (!t.equal(r.status, 0, 'the driver ran')) t.comment(r.stderr);
  const results = JSON.parse(r.stdout.trim().split('\n').pop() ?? '{}') as Record<string, Result>;
  const expect = (name: string, ok: boolean, reason: RegExp) => {
    const res = results[name];
    t.ok(res, `${name} ran`);
    t.equal(res?.ok, ok, `${name}: ${res?.reason}`);
    t.match(res?.reason, reason, name);
    t.type(res?.latencyMs, 'number');
  };

  expect('tcp_up', true, /^TCP connect to 127.0.0.1:7001$/);
  expect('tcp_refused', false, /^connection refused \(127.0.0.1:7009\)$/);
  expect('tcp_timeout', false, /^no TCP answer from 10.250.0.99:80 within 0.5 s$/);
  t.ok(results.tcp_timeout!.latencyMs >= 490 && results.tcp_timeout!.latencyMs < 1500, `the timeout is kept: ${results.tcp_timeout!.latencyMs} ms`);
  expect('tcp_expect_ok', true, /answered '220'/);
  expect('tcp_expect_missing', false, /closed without sending '250'/);

  expect('http_ok', true, /^http:\/\/127.0.0.1:7080\/ok answered 'HTTP\/1.1 200 OK'$/);
  expect('http_500', false, /answered 'HTTP\/1.1 500 Internal Server Error', expected '200'/);
  expect('http_500_default', false, /answered 'HTTP\/1.1 500/);
  expect('http_301_default', true, /answered 'HTTP\/1.1 301/);
  expect('http_body_ok', true, /with 'healthy'/);
  expect('http_body_missing', false, /without 'all systems go' in the body/);
  expect('http_vhost', true, /with 'host=www.example.com'/);
  expect('http_slow', false, /^no HTTP answer from http:\/\/127.0.0.1:7080\/slow within 0.5 s$/);
  expect('http_refused', false, /^connection refused \(http:\/\/127.0.0.1:7081\/\)$/);
  expect('https_ok', true, /^https:\/\/127.0.0.1:7443\/ok answered 'HTTP\/1.1 200 OK' with 'healthy'$/);

  expect('udp_reply', true, /^UDP reply from 127.0.0.1:7053$/);
  expect('udp_unreachable', false, /^port unreachable \(ICMP\) \(udp 127.0.0.1:7055\)$/);
  expect('udp_silent', true, /^no ICMP unreachable from udp 127.0.0.1:7054 within 0.5 s$/);
  expect('udp_silent_expecting', false, /^no UDP reply from 127.0.0.1:7054 within 0.5 s$/);
  // Before: send() on the unconnected socket threw out of the callback and ended the process.
  expect('udp_no_route', false, /^network unreachable \(udp 192.0.2.1:53\)$/);

  expect('ping_up', true, /^ping 127.0.0.1: 2\/2 replies, average [0-9.]+ ms$/);
  expect('ping_down', false, /^ping 10.250.0.99: 0\/2 replies \(100% loss\)$/);
  expect('ping_slow_limit', false, /above 0.001 ms$/);
});
