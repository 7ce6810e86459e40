// Issue 11, finding 6 (exposure), against the real daemon (`nftfarm serve --dry-run` in a
// throwaway namespace, driven with curl): its files are the owner's only and tightened when
// found looser; HTTPS with --tls-cert/--tls-key (or the environment) and a certificate made
// here; a warning when it listens beyond loopback in plain HTTP, where /metrics needs the key.
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import t from 'tap';
import { startDaemon, ZAPI_PATH } from '../helpers/live-daemon.js';
import { isUnauthorizedBody, isZapiErrorEnvelope } from '../helpers/raw-http.js';

const modeOf = (p: string) => fs.statSync(p).mode & 0o777;

/** A self-signed certificate for 127.0.0.1, made with openssl. */
function makeCertificate(t: { teardown(fn: () => void): void }): { cert: string; key: string } {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'nftfarm-tls-'));
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));
  const cert = path.join(dir, 'cert.pem');
  const key = path.join(dir, 'key.pem');
  const r = spawnSync(
    'openssl',
    ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-days', '1', '-subj', '/CN=nftfarm-test', '-addext', 'subjectAltName=IP:127.0.0.1', '-keyout', key, '-out', cert],
    { encoding: 'utf8' },
  );
  if (r.status !== 0) throw new Error(`openssl failed: ${r.stderr}`);
  return { cert, key };
}

t.test('files: a 0700 data directory, 0600 database, -wal, -shm and key file; looser ones tightened at start', async (t) => {
  const d = await startDaemon(t, { prefix: 'nfmod', dataDir: 'state', keyFile: true });
  const dir = path.dirname(d.dbPath);
  const files = ['nftfarm.db', 'nftfarm.db-wal', 'nftfarm.db-shm', 'api-key'].map((f) => path.join(dir, f));
  t.equal((await d.zapi('POST', '/farms', { farmname: 'f1', profile: 'l4xnat', vip: '10.250.0.100', vport: '80' })).status, 201);
  t.equal(modeOf(dir), 0o700, 'data directory 0700');
  for (const f of files) t.equal(modeOf(f), 0o600, `${path.basename(f)} 0600`);

  await d.stop();
  // A clean stop checkpoints and removes -wal and -shm; a crash leaves them: make them too.
  const loosened = [dir, ...files];
  fs.chmodSync(dir, 0o755);
  for (const f of files) fs.writeFileSync(f, fs.existsSync(f) ? fs.readFileSync(f) : '', { mode: 0o644 });
  for (const f of files) fs.chmodSync(f, 0o644);
  await d.restart();
  t.equal(modeOf(dir), 0o700, 'the directory is tightened again');
  for (const f of files) t.equal(modeOf(f), 0o600, `${path.basename(f)} tightened again`);
  const log = fs.readFileSync(d.logPath, 'utf8');
  for (const p of loosened) t.match(log, new RegExp(`"path":"${p}","from":"0(755|644)","to":"0[67]00"[^\\n]*tightened a data file`), `a log line for ${path.basename(p)}`);
  t.equal((await d.zapi('GET', '/farms/f1')).status, 200, 'the data is intact');
});

t.test('a data directory shared with other files is left as is, with a warning', async (t) => {
  const d = await startDaemon(t, { prefix: 'nfmos' });
  // The helper's directory also holds the daemon's log: not nftfarm's own.
  const dir = path.dirname(d.dbPath);
  await d.stop();
  fs.chmodSync(dir, 0o755);
  await d.restart();
  t.equal(modeOf(dir), 0o755, 'left alone');
  t.match(fs.readFileSync(d.logPath, 'utf8'), /holds the database is open to others \(mode 0755\) and holds other files \(nftfarm\.log\): left as is/);
  t.equal(modeOf(d.dbPath), 0o600);
});

t.test('HTTPS with --tls-cert and --tls-key: curl trusts the certificate made here; errors stay in the envelope', async (t) => {
  const { cert, key } = makeCertificate(t);
  const d = await startDaemon(t, { prefix: 'nftls', args: ['--tls-cert', cert, '--tls-key', key], caFile: cert });
  t.match(d.url, /^https:/);
  const farms = await d.zapi('GET', '/farms');
  t.equal(farms.status, 200);
  t.strictSame(farms.body, { description: 'List farms', params: [] });
  t.equal((await d.zapi('POST', '/farms', { farmname: 'tls', profile: 'l4xnat', vip: '10.250.0.100', vport: '443' })).status, 201);

  const plain = await d.exec(['curl', '-sS', '--max-time', '3', '-o', '/dev/null', '-w', '%{http_code}', `http://127.0.0.1:4444${ZAPI_PATH}/farms`]);
  t.not(plain.stdout.trim(), '200', `plain HTTP is not served (${plain.stdout.trim()})`);
  const bad = await d.exec(['curl', '-sS', '--cacert', cert, '-H', `ZAPI_KEY: ${d.key}`, `https://127.0.0.1:4444${ZAPI_PATH}/farms/a%zz`]);
  t.ok(isZapiErrorEnvelope(JSON.parse(bad.stdout)), `a malformed URL over HTTPS: the envelope (${bad.stdout})`);
  const unverified = await d.exec(['curl', '-sS', '--max-time', '3', `https://127.0.0.1:4444/healthz`]);
  t.not(unverified.status, 0, 'curl without the CA refuses the self-signed certificate');
});

t.test('HTTPS from NFTFARM_TLS_CERT and NFTFARM_TLS_KEY, listening on every address: no plain-HTTP warning', async (t) => {
  const { cert, key } = makeCertificate(t);
  const d = await startDaemon(t, { prefix: 'nftle', args: ['--listen', '0.0.0.0:4444'], env: { NFTFARM_TLS_CERT: cert, NFTFARM_TLS_KEY: key }, caFile: cert });
  t.equal((await d.zapi('GET', '/farms')).status, 200);
  const log = fs.readFileSync(d.logPath, 'utf8');
  t.match(log, /"https":true/);
  t.notMatch(log, /over plain HTTP/);
});

t.test('listening beyond loopback in plain HTTP: a warning, and /metrics needs the key (NFTFARM_METRICS auto)', async (t) => {
  const d = await startDaemon(t, { prefix: 'nfpln', args: ['--listen', '0.0.0.0:4444'] });
  const log = fs.readFileSync(d.logPath, 'utf8');
  t.match(log, /"level":40[^\n]*the API listens beyond loopback over plain HTTP/, 'the warning');
  t.match(log, /"metrics":"key"/);
  const anonymous = await d.exec(['curl', '-sS', 'http://127.0.0.1:4444/metrics']);
  t.ok(isUnauthorizedBody(JSON.parse(anonymous.stdout)), `/metrics without the key: 401 body (${anonymous.stdout.slice(0, 100)})`);
  const keyed = await d.exec(['curl', '-sS', '-H', `ZAPI_KEY: ${d.key}`, 'http://127.0.0.1:4444/metrics']);
  t.match(keyed.stdout, /nftfarm_desired_generation/);
});

t.test('on loopback /metrics stays open by default', async (t) => {
  const d = await startDaemon(t, { prefix: 'nflop' });
  const anonymous = await d.exec(['curl', '-sS', 'http://127.0.0.1:4444/metrics']);
  t.match(anonymous.stdout, /nftfarm_desired_generation/);
  t.notMatch(fs.readFileSync(d.logPath, 'utf8'), /over plain HTTP/);
});
