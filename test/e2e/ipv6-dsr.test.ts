/**
 * IPv6 Direct Server Return end to end (issue 13): a lab with IPv6 only on its links, the real
 * daemon driven through its API, backends set up by the Linux script the API serves, real TCP
 * and UDP over IPv6, and proxy NDP: only the load balancer answers solicitations for the VIP,
 * multicast and unicast ones.
 */
import t from 'tap';
import { createLab, LAB_VIP6, type Frame, type Lab } from '../../lab/lab.js';
import { farmReady, startLabDaemon } from '../../lab/daemon.js';

const VIP = LAB_VIP6;
let lab: Lab;

t.before(async () => {
  lab = await createLab({ prefix: 'nfv6dsr', backends: 2, family: 'ipv6' });
  await lab.startHttpBackends(80);
});
t.teardown(async () => lab?.destroy());

const sysctl = async (ns: string, key: string) => (await lab.exec(ns, ['sysctl', '-n', key])).stdout.trim();
const isAdvertFor = (f: Frame, target: string) => f.icmpv6?.type === 136 && f.icmpv6.target === target;

t.test('a DSR farm on an IPv6 VIP with two backends set up by the served script', async (t) => {
  // A host that takes its default route from router advertisements: nftfarm must keep it.
  await lab.execOk(lab.lb.ns, ['sysctl', '-q', '-w', 'net.ipv6.conf.eth0.accept_ra=1']);
  t.equal((await lab.exec(lab.lb.ns, ['ip', '-4', 'addr', 'show', 'dev', 'eth0'])).stdout.trim(), '', 'no IPv4 address on the load balancer link');
  const daemon = await startLabDaemon(t, lab);
  t.equal((await daemon.api('POST', '/farms', { farmname: 'web6', profile: 'l4xnat', vip: 'FD00:250:0::100', vport: '80' })).status, 201);
  t.equal((await daemon.api('PUT', '/farms/web6', { nattype: 'dsr' })).status, 200);

  const script = await daemon.api('GET', '/farms/web6/backend-setup?os=linux&nic=eth0');
  t.equal(script.status, 200);
  t.match(script.body, `VIP=${VIP}`, 'the script names the canonical VIP');
  t.match(script.body, 'ip -6 addr add "$VIP/128" dev lo nodad');
  t.notMatch(script.body, 'net.ipv4.conf', 'no ARP settings: nothing like arp_ignore is needed for IPv6');
  for (const b of lab.backends) {
    const ran = await lab.exec(b.ns, ['sh', '-s', 'eth0'], { input: script.body });
    t.equal(ran.code, 0, `the script runs on ${b.name}: ${ran.stderr}`);
    t.match((await lab.exec(b.ns, ['ip', '-6', 'addr', 'show', 'dev', 'lo'])).stdout, `inet6 ${VIP}/128`, `${b.name} holds the VIP on lo`);
    t.equal((await lab.exec(b.ns, ['sh', '-s', 'eth0'], { input: script.body })).code, 0, 'the script is idempotent');
  }
  for (const b of lab.backends) t.equal((await daemon.api('POST', '/farms/web6/backends', { ip: b.ip })).status, 201);
  if (!t.ok(await daemon.until(() => farmReady(daemon, 'web6'), 15_000), 'the farm is applied and up')) t.comment(daemon.logs());

  await t.test('the backends MACs come from the IPv6 neighbour table', async (t) => {
    const macs = await daemon.nft(['list', 'map', 'netdev', 'nftfarm', 'backend_macs']);
    for (const b of lab.backends) t.match(macs, b.mac, `${b.name}'s MAC is in the macs map`);
  });

  await t.test('proxy NDP is set up, the global forwarding switch left alone', async (t) => {
    t.match((await lab.exec(lab.lb.ns, ['ip', '-6', 'neigh', 'show', 'proxy'])).stdout, `${VIP} dev eth0`);
    t.equal(await sysctl(lab.lb.ns, 'net.ipv6.conf.eth0.forwarding'), '1');
    t.equal(await sysctl(lab.lb.ns, 'net.ipv6.conf.eth0.proxy_ndp'), '1');
    t.equal(await sysctl(lab.lb.ns, 'net.ipv6.conf.all.proxy_ndp'), '1');
    t.equal(await sysctl(lab.lb.ns, 'net.ipv6.conf.eth0.accept_ra'), '2', 'router advertisements still accepted on the forwarding interface');
    t.equal(await sysctl(lab.lb.ns, 'net.ipv6.conf.all.forwarding'), '0', 'global forwarding untouched');
    t.equal(await sysctl(lab.lb.ns, 'net.ipv6.neigh.eth0.proxy_delay'), '0');
  });

  await t.test('50 fresh connections: both backends, the real client address, the VIP as local address, no reply through the LB', async (t) => {
    const capture = await lab.capture(lab.lb.ns, 'eth0', 'ip6');
    const result = await lab.httpMany(`http://[${VIP}]/`, 50);
    const frames = (await capture.stop()).frames;
    t.equal(result.ok, 50, `all 50 answered: ${JSON.stringify(result.errors)}`);
    t.ok((result.byBackend.b1 ?? 0) > 5 && (result.byBackend.b2 ?? 0) > 5, `both backends used: ${JSON.stringify(result.byBackend)}`);
    for (const sample of result.samples) {
      t.match(sample.client, new RegExp(`^${lab.client.ip}:[0-9]+$`), 'the backend sees the client address');
      t.equal(sample.local, `${VIP}:80`, 'the backend sees the VIP as its local address');
    }
    const toVip = frames.filter((f) => f.ipv6?.src === lab.client.ip && f.ipv6.dst === VIP && f.tcp);
    const fromVip = frames.filter((f) => f.ipv6?.src === VIP && f.tcp);
    t.ok(toVip.length >= 50 * 3, `the load balancer sees the client-to-VIP frames (${toVip.length})`);
    t.equal(fromVip.length, 0, 'no VIP-to-client frame crosses the load balancer');
    const forwarded = frames.filter((f) => f.ipv6?.dst === VIP && f.tcp && f.srcMac === lab.lb.mac);
    t.same([...new Set(forwarded.map((f) => f.dstMac))].sort(), lab.backends.map((b) => b.mac).sort(), 'the LB forwards them to the backends MACs');
  });

  await t.test('only the load balancer answers neighbour solicitations for the VIP, multicast and unicast', async (t) => {
    const capture = await lab.capture(lab.client.ns, 'eth0', 'icmp6');
    // Multicast: a client without an entry solicits the solicited-node group, which reaches every host.
    await lab.execOk(lab.client.ns, ['ip', '-6', 'neigh', 'flush', 'dev', 'eth0']);
    t.equal((await lab.httpMany(`http://[${VIP}]/`, 3)).ok, 3);
    // Unicast: a stale entry is re-checked with a solicitation addressed to the VIP itself.
    // The traffic that triggers it must not confirm the entry itself (TCP progress would): a
    // ping, which the load balancer drops (no farm takes ICMPv6 echo on the VIP).
    await lab.execOk(lab.client.ns, ['sysctl', '-q', '-w', 'net.ipv6.neigh.eth0.delay_first_probe_time=1']);
    await lab.execOk(lab.client.ns, ['ip', '-6', 'neigh', 'replace', VIP, 'dev', 'eth0', 'lladdr', lab.lb.mac, 'nud', 'stale']);
    await lab.exec(lab.client.ns, ['ping', '-6', '-n', '-c', '1', '-W', '1', VIP]);
    const reachable = await waitFor(async () => /REACHABLE/.test((await lab.exec(lab.client.ns, ['ip', '-6', 'neigh', 'show', VIP, 'dev', 'eth0'])).stdout), 6000);
    const frames = (await capture.stop()).frames;
    t.ok(reachable, 'the unicast re-check was answered: the entry is reachable again');
    const solicits = frames.filter((f) => f.icmpv6?.type === 135 && f.icmpv6.target === VIP);
    t.ok(solicits.some((f) => f.ipv6!.dst.startsWith('ff02::1:ff')), 'a multicast solicitation was sent');
    t.ok(solicits.some((f) => f.ipv6!.dst === VIP), 'a unicast solicitation was sent');
    const adverts = frames.filter((f) => isAdvertFor(f, VIP));
    t.ok(adverts.length >= 2, `advertisements for the VIP: ${adverts.length}`);
    t.same([...new Set(adverts.map((f) => f.srcMac))], [lab.lb.mac], 'every advertisement for the VIP comes from the load balancer');
    const unicast = solicits.find((f) => f.ipv6!.dst === VIP);
    t.ok(unicast && adverts.some((f) => f.time >= unicast.time), 'the unicast solicitation was answered by an advertisement');
    for (const b of lab.backends) t.notOk(adverts.some((f) => f.srcMac === b.mac), `${b.name} never answers for the VIP`);
  });

  await t.test('UDP over IPv6: each flow sticks to one backend, replies from the VIP', async (t) => {
    await lab.startUdpBackends(VIP, 53);
    t.equal((await daemon.api('POST', '/farms', { farmname: 'dns6', profile: 'l4xnat', vip: VIP, vport: '53' })).status, 201);
    t.equal((await daemon.api('PUT', '/farms/dns6', { nattype: 'dsr', protocol: 'udp' })).status, 200);
    for (const b of lab.backends) t.equal((await daemon.api('POST', '/farms/dns6/backends', { ip: b.ip, port: '53' })).status, 201);
    t.ok(await daemon.until(() => farmReady(daemon, 'dns6'), 10_000), 'the UDP farm is applied and up');
    const seen = new Set<string>();
    for (let i = 0; i < 6; i++) {
      const r = await lab.udp(VIP, 53, 10);
      t.equal(r.received, 10, `flow ${i}: all 10 datagrams answered`);
      t.equal(Object.keys(r.byBackend).length, 1, `flow ${i}: one backend ${JSON.stringify(r.byBackend)}`);
      t.same(Object.keys(r.from), [`${VIP}:53`], 'replies come from the VIP');
      seen.add(Object.keys(r.byBackend)[0]!);
    }
    t.equal((await daemon.api('DELETE', '/farms/dns6')).status, 200);
  });

  await t.test('delete: no rule, proxy entry, record or changed setting left behind', async (t) => {
    t.equal((await daemon.api('DELETE', '/farms/web6')).status, 200);
    t.ok(await daemon.until(async () => (await daemon.nft(['list', 'tables'])) === '', 5000), 'the nftfarm table is gone');
    t.ok(await daemon.until(async () => !(await lab.exec(lab.lb.ns, ['ip', '-6', 'neigh', 'show', 'proxy'])).stdout.includes(VIP), 5000), 'no proxy entry');
    t.notMatch((await lab.exec(lab.lb.ns, ['ip', '-6', 'route', 'show', 'table', 'all'])).stdout, VIP, 'no route or record for the VIP');
    t.equal(await sysctl(lab.lb.ns, 'net.ipv6.conf.eth0.forwarding'), '0', 'forwarding restored');
    t.equal(await sysctl(lab.lb.ns, 'net.ipv6.conf.eth0.proxy_ndp'), '0', 'proxy_ndp restored');
    t.equal(await sysctl(lab.lb.ns, 'net.ipv6.conf.all.proxy_ndp'), '0', 'all.proxy_ndp restored');
    t.equal(await sysctl(lab.lb.ns, 'net.ipv6.conf.eth0.accept_ra'), '1', 'accept_ra restored');
  });
});

async function waitFor(check: () => Promise<boolean>, timeoutMs: number): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (await check()) return true;
    if (Date.now() > deadline) return false;
    await new Promise((r) => setTimeout(r, 200));
  }
}
