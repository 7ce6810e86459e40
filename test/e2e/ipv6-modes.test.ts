/**
 * The IPv6 modes other than dsr (issue 13), end to end in a lab with IPv6 only on its links:
 * what the backends see, as in the IPv4 test of the modes (nat-modes.test.ts). Backend b1 has
 * a port of its own (8080): each mode must rewrite the port. In the modes without source NAT
 * the backends route their replies to the client through the load balancer.
 */
import t from 'tap';
import { createLab, LAB_VIP6, type Lab } from '../../lab/lab.js';
import { farmReady, startLabDaemon } from '../../lab/daemon.js';

const VIP = LAB_VIP6;
let lab: Lab;

t.before(async () => {
  lab = await createLab({ prefix: 'nfv6mode', backends: 2, family: 'ipv6' });
  const [b1, b2] = lab.backends;
  for (const b of lab.backends) await lab.execOk(b.ns, ['ip', '-6', 'route', 'replace', `${lab.client.ip}/128`, 'via', lab.lb.ip]);
  await lab.startBackendServer(b1!, { httpPort: 8080, httpHosts: ['::'] });
  await lab.startBackendServer(b2!, { httpPort: 80, httpHosts: ['::'] });
});
t.teardown(async () => lab?.destroy());

const MODES = ['nat', 'dnat', 'stateless_dnat'] as const;

t.test('IPv6 farms in the modes that rewrite addresses', async (t) => {
  const daemon = await startLabDaemon(t, lab);
  const [b1, b2] = lab.backends;
  const ok = (r: { status: number; body: unknown }, status = 200) => {
    if (r.status !== status) throw new Error(JSON.stringify(r));
  };
  ok(await daemon.api('POST', '/farms', { farmname: 'web6', profile: 'l4xnat', vip: VIP, vport: '80' }), 201);
  ok(await daemon.api('POST', '/farms/web6/backends', { ip: b1!.ip, port: 8080 }), 201);
  ok(await daemon.api('POST', '/farms/web6/backends', { ip: b2!.ip }), 201);
  for (const mode of MODES) {
    ok(await daemon.api('PUT', '/farms/web6', { nattype: mode }));
    if (!t.ok(await daemon.until(() => farmReady(daemon, 'web6'), 10_000), `${mode}: applied and up`)) {
      t.comment(JSON.stringify((await daemon.api('GET', '/farms/web6')).body.params.dataplane));
      continue;
    }
    await t.test(`${mode}: fresh connections reach both backends, which see the right addresses`, async (t) => {
      const result = await lab.httpMany(`http://[${VIP}]/`, 40);
      t.equal(result.ok, 40, `all answered: ${JSON.stringify(result.errors)}`);
      t.ok((result.byBackend.b1 ?? 0) > 3 && (result.byBackend.b2 ?? 0) > 3, `both backends used: ${JSON.stringify(result.byBackend)}`);
      const seen = mode === 'nat' ? lab.lb.ip : lab.client.ip;
      for (const s of result.samples) {
        t.match(s.client, new RegExp(`^${seen}:[0-9]+$`), `${mode}: the backend sees ${mode === 'nat' ? 'the load balancer' : 'the client'} as the source`);
        t.equal(s.local, s.backend === 'b1' ? `${b1!.ip}:8080` : `${b2!.ip}:80`, `${mode}: the backend sees its own address and port`);
      }
      const stats = await daemon.api('GET', '/stats/farms/web6/backends');
      const newFlows = (stats.body.backends as { new_flows: number }[]).reduce((a, b) => a + b.new_flows, 0);
      t.ok(newFlows >= 40, `${newFlows} new flows counted`);
    });
  }
  ok(await daemon.api('DELETE', '/farms/web6'));
  t.ok(await daemon.until(async () => (await daemon.nft(['list', 'tables'])) === '', 5000), 'no table left');
  t.equal((await lab.exec(lab.lb.ns, ['sysctl', '-n', 'net.ipv6.conf.eth0.forwarding'])).stdout.trim(), '0', 'forwarding restored');
});
