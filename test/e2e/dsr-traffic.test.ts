/**
 * Direct Server Return end to end: the real daemon in the lab's load-balancer namespace,
 * driven through its HTTP API only, real TCP and UDP traffic between namespaces.
 */
import t from 'tap';
import fs from 'node:fs';
import { createLab, LAB_VIP, type Lab } from '../../lab/lab.js';
import { createDsrFarm, farmReady, startLabDaemon, type LabDaemon } from '../../lab/daemon.js';

const VIP = LAB_VIP;
let lab: Lab;
let daemon: LabDaemon;

t.before(async () => {
  lab = await createLab({ prefix: 'nfdsr', backends: 2 });
  await lab.configureDsrBackends(VIP);
  await lab.startHttpBackends(80);
});
t.teardown(async () => lab?.destroy());

t.test('a DSR farm with two backends', async (t) => {
  daemon = await startLabDaemon(t, lab);
  await createDsrFarm(daemon, lab, 'web', VIP, '80');
  if (!t.ok(await daemon.until(() => farmReady(daemon, 'web'), 10_000), 'the farm is applied and up')) t.comment(daemon.logs());

  await t.test('the daemon runs with a small young generation and fixed malloc thresholds, in the process that was started (bin/nftfarm execs itself)', async (t) => {
    const argv = fs.readFileSync(`/proc/${daemon.pid()}/cmdline`, 'utf8').split('\0');
    t.ok(argv.includes('--max-semi-space-size=8'), `command line: ${argv.join(' ')}`);
    t.ok(argv.some((a) => a.endsWith('bin/nftfarm')) && argv.includes('serve'), 'still bin/nftfarm serve');
    const env = fs.readFileSync(`/proc/${daemon.pid()}/environ`, 'utf8').split('\0');
    t.ok(env.includes('MALLOC_MMAP_THRESHOLD_=65536') && env.includes('MALLOC_TRIM_THRESHOLD_=262144'), 'with fixed glibc malloc thresholds');
  });

  await t.test('the backends MACs were learned by nftfarm itself', async (t) => {
    const macs = await daemon.nft(['list', 'map', 'netdev', 'nftfarm', 'backend_macs']);
    for (const b of lab.backends) t.match(macs, b.mac, `${b.name}'s MAC is in the macs map`);
  });

  await t.test('50 fresh HTTP connections: no failure, both backends used, real client IP, VIP as local address', async (t) => {
    const capture = await lab.capture(lab.lb.ns, 'eth0', 'ip');
    const result = await lab.httpMany(`http://${VIP}/`, 50);
    const frames = (await capture.stop()).frames;
    t.equal(result.ok, 50, `all 50 answered: ${JSON.stringify(result.errors)}`);
    t.equal(result.failed, 0);
    t.ok((result.byBackend.b1 ?? 0) > 5 && (result.byBackend.b2 ?? 0) > 5, `both backends used: ${JSON.stringify(result.byBackend)}`);
    for (const sample of result.samples) {
      t.match(sample.client, new RegExp(`^${lab.client.ip}:`), 'the backend sees the real client IP');
      t.equal(sample.local, `${VIP}:80`, 'the backend sees the VIP as its local address');
    }
    const toVip = frames.filter((f) => f.ipv4?.src === lab.client.ip && f.ipv4?.dst === VIP);
    const fromVip = frames.filter((f) => f.ipv4?.src === VIP);
    t.ok(toVip.length >= 50 * 3, `the load balancer sees the client-to-VIP frames (${toVip.length})`);
    t.equal(fromVip.length, 0, 'no VIP-to-client frame crosses the load balancer: replies go straight to the client');
  });

  await t.test('a 3 MB download completes', async (t) => {
    const dl = await lab.download(`http://${VIP}/bytes/3145728`);
    t.ok(dl.ok, JSON.stringify(dl));
    t.equal(dl.bytes, 3145728);
  });

  await t.test('GET /farms/web and /system/status show the applied generation', async (t) => {
    const farm = await daemon.api('GET', '/farms/web');
    t.equal(farm.body.params.dataplane.state, 'applied');
    t.equal(farm.body.params.dataplane.interface, 'eth0');
    t.equal(farm.body.params.dataplane.error, null);
    const system = await daemon.api('GET', '/system/status');
    t.equal(system.status, 200);
    t.equal(system.body.params.mode, 'kernel');
    t.equal(system.body.params.applied_generation, system.body.params.store_generation);
    t.equal(system.body.params.last_error, null);
    const firstPass = Date.parse(system.body.params.first_pass_at);
    t.ok(firstPass > Date.now() - 120_000 && firstPass <= Date.parse(system.body.params.last_pass_at), `first_pass_at ${system.body.params.first_pass_at}: this start's, at or before the last pass`);
  });

  await t.test('weights are honoured in the share of new flows', async (t) => {
    t.equal((await daemon.api('PUT', '/farms/web/backends/0', { weight: 3 })).status, 200);
    t.ok(await daemon.until(() => farmReady(daemon, 'web'), 5000));
    const result = await lab.httpMany(`http://${VIP}/`, 200);
    t.equal(result.ok, 200);
    const share = (result.byBackend.b1 ?? 0) / 200;
    t.ok(share > 0.62 && share < 0.88, `b1 (weight 3 of 4) got ${Math.round(share * 100)}% of new flows`);
    t.equal((await daemon.api('PUT', '/farms/web/backends/0', { weight: 1 })).status, 200);
  });

  await t.test('stop makes the VIP unreachable, start restores it', async (t) => {
    t.equal((await daemon.api('PUT', '/farms/web/actions', { action: 'stop' })).status, 200);
    t.ok(await daemon.until(async () => (await daemon.api('GET', '/farms/web')).body.params.dataplane.state === 'stopped', 5000));
    t.equal(await daemon.nft(['list', 'tables']), '', 'a stopped farm has no rules');
    t.notMatch((await lab.exec(lab.lb.ns, ['ip', 'neigh', 'show', 'proxy'])).stdout, VIP, 'and no VIP announcement');
    const down = await lab.httpMany(`http://${VIP}/`, 3, { timeoutMs: 1500 });
    t.equal(down.ok, 0, 'nothing answers on the VIP');
    t.equal((await daemon.api('PUT', '/farms/web/actions', { action: 'start' })).status, 200);
    t.ok(await daemon.until(() => farmReady(daemon, 'web'), 5000));
    const up = await lab.httpMany(`http://${VIP}/`, 10);
    t.equal(up.ok, 10, 'the VIP answers again');
  });

  await t.test('port lists and ranges work (80,8000:8100)', async (t) => {
    await lab.startBackendServer(lab.backends[0]!, { httpPort: 8050 });
    await lab.startBackendServer(lab.backends[1]!, { httpPort: 8050 });
    t.equal((await daemon.api('PUT', '/farms/web', { vport: '80,8000:8100' })).status, 200);
    t.ok(await daemon.until(() => farmReady(daemon, 'web'), 5000));
    const ranged = await lab.httpMany(`http://${VIP}:8050/`, 10);
    t.equal(ranged.ok, 10, 'a port inside the range is served');
    const plain = await lab.httpMany(`http://${VIP}/`, 10);
    t.equal(plain.ok, 10, 'the single port still is');
    const outside = await lab.httpMany(`http://${VIP}:8200/`, 2, { timeoutMs: 1000 });
    t.equal(outside.ok, 0, 'a port outside the list is not');
    t.equal((await daemon.api('PUT', '/farms/web', { vport: '80' })).status, 200);
  });

  await t.test('delete leaves no rule, proxy entry or route behind', async (t) => {
    t.equal((await daemon.api('DELETE', '/farms/web')).status, 200);
    t.ok(
      await daemon.until(async () => (await daemon.nft(['list', 'tables'])) === '', 5000),
      'the nftfarm table is gone',
    );
    t.ok(await daemon.until(async () => !(await lab.exec(lab.lb.ns, ['ip', 'neigh', 'show', 'proxy'])).stdout.includes(VIP), 5000), 'no proxy entry');
    t.notMatch((await lab.exec(lab.lb.ns, ['ip', 'route', 'show', 'table', 'all'])).stdout, VIP, 'no route for the VIP');
    t.equal((await lab.exec(lab.lb.ns, ['sysctl', '-n', 'net.ipv4.conf.eth0.forwarding'])).stdout.trim(), '0', 'forwarding restored');
  });

  await t.test('nothing is left behind after nftfarm exits with no farms', async (t) => {
    await daemon.stop('SIGTERM');
    t.equal(await daemon.nft(['list', 'ruleset']), '');
    t.match(daemon.logs(), '"msg":"stopped"', 'it stopped gracefully');
  });
});

t.test('UDP: every datagram of a flow reaches the same backend, bound to the VIP', async (t) => {
  const udpLab = await createLab({ prefix: 'nfdsru', backends: 2 });
  t.teardown(() => udpLab.destroy());
  await udpLab.configureDsrBackends(VIP);
  await udpLab.startUdpBackends(VIP, 53);
  const d = await startLabDaemon(t, udpLab);
  t.equal((await d.api('POST', '/farms', { farmname: 'dns', profile: 'l4xnat', vip: VIP, vport: '53' })).status, 201);
  t.equal((await d.api('PUT', '/farms/dns', { nattype: 'dsr', protocol: 'udp' })).status, 200);
  for (const b of udpLab.backends) t.equal((await d.api('POST', '/farms/dns/backends', { ip: b.ip, port: '53' })).status, 201);
  if (!t.ok(await d.until(() => farmReady(d, 'dns'), 10_000), 'the farm is applied and up')) t.comment(d.logs());
  const flows: string[] = [];
  for (let i = 0; i < 6; i++) {
    const r = await udpLab.udp(VIP, 53, 10);
    t.equal(r.received, 10, `flow ${i}: all 10 datagrams answered`);
    t.equal(Object.keys(r.byBackend).length, 1, `flow ${i}: one backend for the whole flow ${JSON.stringify(r.byBackend)}`);
    t.same(Object.keys(r.from), [`${VIP}:53`], 'replies come from the VIP');
    flows.push(Object.keys(r.byBackend)[0]!);
  }
  t.ok(new Set(flows).size >= 1, `flows went to: ${flows.join(', ')}`);
});
