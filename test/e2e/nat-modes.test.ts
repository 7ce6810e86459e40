/**
 * nat, dnat and stateless_dnat end to end: the real daemon in the lab's load balancer, driven
 * through its HTTP API only, real TCP and UDP between namespaces. One farm is switched from
 * mode to mode at runtime, and each switch must leave nothing of the previous mode behind.
 *
 * Backend b1 has a port of its own (8080, and 5353 for DNS): each mode must rewrite the port.
 * In dnat and stateless_dnat the backends route their replies to the client through the load
 * balancer (a host route, as a one-armed set-up would have a default route).
 */
import { spawnSync } from 'node:child_process';
import path from 'node:path';
import t from 'tap';
import { CLIENT_IP, LB_IP, PACKAGE_ROOT, createLab, type Lab } from '../../lab/lab.js';
import { cleanEnv, farmReady, startLabDaemon } from '../../lab/daemon.js';

const VIP = '10.250.0.100';
const DNS_VIP = '10.250.0.101';
let lab: Lab;

t.before(async () => {
  lab = await createLab({ prefix: 'nfmode', backends: 2 });
  const [b1, b2] = lab.backends;
  for (const b of lab.backends) await lab.execOk(b.ns, ['ip', 'route', 'replace', `${CLIENT_IP}/32`, 'via', LB_IP]);
  await lab.startBackendServer(b1!, { httpPort: 8080, udp: [`${b1!.ip}:5353`] });
  await lab.startBackendServer(b2!, { httpPort: 80, udp: [`${b2!.ip}:53`] });
});
t.teardown(async () => lab?.destroy());

const sysctl = async (key: string) => (await lab.execOk(lab.lb.ns, ['sysctl', '-n', key])).stdout.trim();

async function marksTracked(marks: number[]): Promise<number> {
  const r = await lab.exec(lab.lb.ns, ['conntrack', '-L', '-f', 'ipv4']);
  return r.stdout.split('\n').filter((l) => marks.some((m) => l.includes(` mark=${m} `))).length;
}

t.test('nat, dnat and stateless_dnat serve the same farms, switched at runtime', async (t) => {
  const redirectsBefore = await sysctl('net.ipv4.conf.all.send_redirects');
  const daemon = await startLabDaemon(t, lab);
  const [b1, b2] = lab.backends;
  const ok = (r: { status: number; body: unknown }, status = 200) => {
    if (r.status !== status) throw new Error(JSON.stringify(r));
  };
  ok(await daemon.api('POST', '/farms', { farmname: 'web', profile: 'l4xnat', vip: VIP, vport: '80' }), 201);
  ok(await daemon.api('POST', '/farms/web/backends', { ip: b1!.ip, port: 8080 }), 201);
  ok(await daemon.api('POST', '/farms/web/backends', { ip: b2!.ip }), 201);
  ok(await daemon.api('POST', '/farms', { farmname: 'dns', profile: 'l4xnat', vip: DNS_VIP, vport: '53' }), 201);
  ok(await daemon.api('PUT', '/farms/dns', { protocol: 'udp' }));
  ok(await daemon.api('POST', '/farms/dns/backends', { ip: b1!.ip, port: 5353 }), 201);
  ok(await daemon.api('POST', '/farms/dns/backends', { ip: b2!.ip }), 201);

  let previous: string | null = null;
  for (const mode of ['nat', 'dnat', 'stateless_dnat'] as const) {
    // Connections of the previous mode, to show the switch leaves none behind.
    if (previous) await lab.httpMany(`http://${VIP}/`, 4);
    ok(await daemon.api('PUT', '/farms/web', { nattype: mode }));
    ok(await daemon.api('PUT', '/farms/dns', { nattype: mode }));
    const ready = await daemon.until(async () => (await farmReady(daemon, 'web')) && (await farmReady(daemon, 'dns')), 10_000);
    if (!t.ok(ready, `${mode}: both farms applied and up`)) {
      t.comment(daemon.logs());
      return;
    }

    await t.test(`${mode}: fresh connections reach both backends, which see the right addresses`, async (t) => {
      const result = await lab.httpMany(`http://${VIP}/`, 40);
      t.equal(result.ok, 40, `all answered: ${JSON.stringify(result.errors)}`);
      t.ok((result.byBackend.b1 ?? 0) > 3 && (result.byBackend.b2 ?? 0) > 3, `both backends used: ${JSON.stringify(result.byBackend)}`);
      const seenClient = mode === 'nat' ? LB_IP : CLIENT_IP;
      for (const s of result.samples) {
        t.match(s.client, new RegExp(`^${seenClient.replace(/\./g, '\\.')}:`), `${mode}: the backend sees ${mode === 'nat' ? 'the load balancer' : 'the client'} as the source`);
        t.equal(s.local, s.backend === 'b1' ? `${b1!.ip}:8080` : `${b2!.ip}:80`, `${mode}: the backend sees its own address and port`);
      }
    });

    await t.test(`${mode}: the statistics count the new flows and the packets sent to the backends`, async (t) => {
      const stats = await daemon.api('GET', '/stats/farms/web/backends');
      t.equal(stats.status, 200);
      const sum = (field: string) => (stats.body.backends as Record<string, number>[]).reduce((a, b) => a + (b[field] ?? 0), 0);
      t.ok(sum('new_flows') >= 40, `${sum('new_flows')} new flows counted for 40 connections`);
      t.ok(sum('packets') >= 40 * 4, `${sum('packets')} packets to the backends`);
      t.ok((stats.body.backends as { new_flows: number }[]).every((b) => b.new_flows > 0), 'per backend');
    });

    await t.test(`${mode}: a 3 MB download completes`, async (t) => {
      const dl = await lab.download(`http://${VIP}/bytes/3145728`);
      t.ok(dl.ok, JSON.stringify(dl));
      t.equal(dl.bytes, 3145728);
    });

    await t.test(`${mode}: a UDP farm answers, from the VIP`, async (t) => {
      const answered: Record<string, number> = {};
      for (let flow = 0; flow < 4; flow++) {
        const r = await lab.udp(DNS_VIP, 53, 10);
        t.equal(r.received, 10, `flow ${flow}: every datagram answered: ${JSON.stringify(r.errors)}`);
        t.same(Object.keys(r.from), [`${DNS_VIP}:53`], 'replies come from the VIP and the virtual port');
        for (const [b, n] of Object.entries(r.byBackend)) answered[b] = (answered[b] ?? 0) + n;
      }
      t.comment(`datagrams answered per backend: ${JSON.stringify(answered)}`);
    });

    await t.test(`${mode}: the kernel holds this mode's rules only, with the settings it needs`, async (t) => {
      const tables = await daemon.nft(['list', 'tables']);
      const chains = await daemon.nft(['-t', 'list', 'table', 'netdev', 'nftfarm']);
      if (mode === 'stateless_dnat') {
        t.notMatch(tables, 'table inet nftfarm', 'no ip table is left once no farm uses conntrack');
        t.match(chains, 'chain farm_1_replies', 'the replies chain exists');
        t.match(chains, 'chain farm_1 {', 'the farm chain is in the netdev table');
      } else {
        t.match(tables, 'table inet nftfarm');
        t.notMatch(chains, 'chain farm_1 ', 'no netdev chain for a conntrack farm');
        t.notMatch(chains, 'farm_1_replies', 'no stateless replies chain left');
        const natChains = await daemon.nft(['-t', 'list', 'table', 'inet', 'nftfarm']);
        t.match(natChains, 'chain farm_1 {');
        const masq = await daemon.nft(['list', 'set', 'inet', 'nftfarm', 'masqueraded_backends']);
        if (mode === 'nat') t.match(masq, /elements = \{/, 'nat: the backends are masqueraded');
        else t.notMatch(masq, /elements = \{/, 'dnat: nothing is masqueraded');
      }
      t.equal(await sysctl('net.ipv4.conf.eth0.forwarding'), '1', 'forwarding is on');
      t.equal(await sysctl('net.ipv4.conf.all.send_redirects'), '0', 'no ICMP redirects (all)');
      t.equal(await sysctl('net.ipv4.conf.eth0.send_redirects'), '0', 'no ICMP redirects (eth0)');
      const rules = spawnSync('ip', ['netns', 'exec', lab.lb.ns, process.execPath, path.join(PACKAGE_ROOT, 'bin', 'nftfarm'), 'rules', '--db', daemon.dbPath], {
        encoding: 'utf8',
        env: cleanEnv(),
      });
      t.equal(rules.status, 0, rules.stderr);
      t.equal(rules.stdout.includes('table inet nftfarm {'), mode !== 'stateless_dnat', '`nftfarm rules` prints the ip table when a farm uses conntrack');
      const check = spawnSync('ip', ['netns', 'exec', lab.lb.ns, 'nft', '-c', '-f', '-'], { input: rules.stdout, encoding: 'utf8' });
      t.equal(check.status, 0, `nft -c accepts what \`nftfarm rules\` prints: ${check.stderr}`);
      if (previous === 'dnat') {
        // The dnat connections made before the switch were deleted from conntrack.
        t.equal(await marksTracked([1, 2]), 0, 'no tracked connection of the previous mode is left');
      }
    });
    previous = mode;
  }

  await t.test('deleting the farms removes every table and restores the kernel settings', async (t) => {
    ok(await daemon.api('DELETE', '/farms/web'));
    ok(await daemon.api('DELETE', '/farms/dns'));
    const gone = await daemon.until(async () => !(await daemon.nft(['list', 'tables'])).includes('nftfarm'), 10_000);
    t.ok(gone, 'no nftfarm table is left');
    t.equal(await sysctl('net.ipv4.conf.all.send_redirects'), redirectsBefore, 'send_redirects (all) is restored');
    t.match(daemon.logs(), /changed a kernel setting the farms need/, 'the settings nftfarm changed were logged');
  });
});
