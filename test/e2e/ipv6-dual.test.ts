/**
 * IPv4 and IPv6 side by side (issue 13): a lab with both families on its links, an IPv4 and
 * an IPv6 DSR farm on the same interface at once with traffic to both; exact statistics for
 * an IPv6 farm; health checks (ICMPv6 ping, TCP) against IPv6 backends that take a failed one
 * out and bring it back.
 */
import t from 'tap';
import { createLab, LAB_VIP, LAB_VIP6, type Lab } from '../../lab/lab.js';
import { farmReady, startLabDaemon, type LabDaemon } from '../../lab/daemon.js';

let lab: Lab;
let daemon: LabDaemon;
const DATAGRAMS = 25;

t.before(async () => {
  lab = await createLab({ prefix: 'nfv6dual', backends: 2, family: 'dual' });
  await lab.configureDsrBackends(LAB_VIP);
  await lab.configureDsrBackends(LAB_VIP6);
  await lab.startHttpBackends(80);
});
t.teardown(async () => lab?.destroy());

async function dsrFarm(name: string, vip: string, vport: string, family: 4 | 6, extra: Record<string, unknown> = {}): Promise<void> {
  t.equal((await daemon.api('POST', '/farms', { farmname: name, profile: 'l4xnat', vip, vport })).status, 201, `create ${name}`);
  t.equal((await daemon.api('PUT', `/farms/${name}`, { nattype: 'dsr', ...extra })).status, 200);
  for (const b of lab.backends) t.equal((await daemon.api('POST', `/farms/${name}/backends`, { ip: family === 6 ? b.ip6 : b.ip })).status, 201);
  if (!t.ok(await daemon.until(() => farmReady(daemon, name), 15_000), `${name} is applied and up`)) t.comment(daemon.logs());
}

/** IPv6 header + UDP header + `{"seq":N}`: what nftables counts per datagram (the IP length). */
const ipv6Bytes = (count: number) => Array.from({ length: count }, (_, seq) => 40 + 8 + JSON.stringify({ seq }).length).reduce((a, b) => a + b, 0);

t.test('an IPv4 and an IPv6 farm on the same interface at once', async (t) => {
  daemon = await startLabDaemon(t, lab);
  await dsrFarm('web4', LAB_VIP, '80', 4);
  await dsrFarm('web6', LAB_VIP6, '80', 6);
  const farms = (await daemon.api('GET', '/farms')).body.params;
  t.same(farms.map((f: { vip: string }) => f.vip).sort(), [LAB_VIP, LAB_VIP6].sort());
  t.equal((await daemon.api('GET', '/farms/web6')).body.params.dataplane.interface, 'eth0');
  t.equal((await daemon.api('GET', '/farms/web4')).body.params.dataplane.interface, 'eth0');

  const capture = await lab.capture(lab.lb.ns, 'eth0', 'tcp port 80');
  const [four, six] = await Promise.all([lab.httpMany(`http://${LAB_VIP}/`, 40), lab.httpMany(`http://[${LAB_VIP6}]/`, 40)]);
  const frames = (await capture.stop()).frames;
  t.equal(four.ok, 40, `IPv4: all answered ${JSON.stringify(four.errors)}`);
  t.equal(six.ok, 40, `IPv6: all answered ${JSON.stringify(six.errors)}`);
  t.ok((four.byBackend.b1 ?? 0) > 3 && (four.byBackend.b2 ?? 0) > 3, `IPv4 over both backends ${JSON.stringify(four.byBackend)}`);
  t.ok((six.byBackend.b1 ?? 0) > 3 && (six.byBackend.b2 ?? 0) > 3, `IPv6 over both backends ${JSON.stringify(six.byBackend)}`);
  for (const s of four.samples) t.equal(s.local, `${LAB_VIP}:80`);
  for (const s of six.samples) t.equal(s.local, `${LAB_VIP6}:80`);
  t.equal(frames.filter((f) => f.ipv4?.src === LAB_VIP || f.ipv6?.src === LAB_VIP6).length, 0, 'no reply of either family crosses the load balancer');
  t.match((await lab.exec(lab.lb.ns, ['ip', 'neigh', 'show', 'proxy'])).stdout, LAB_VIP, 'proxy ARP for the IPv4 VIP');
  t.match((await lab.exec(lab.lb.ns, ['ip', '-6', 'neigh', 'show', 'proxy'])).stdout, LAB_VIP6, 'proxy NDP for the IPv6 VIP');

  await t.test('stats of an IPv6 farm count exactly the datagrams sent through it', async (t) => {
    await lab.startUdpBackends(LAB_VIP6, 53);
    await dsrFarm('dns6', LAB_VIP6, '53', 6, { protocol: 'udp', persistence: 'ip', ttl: 120 });
    const before = await daemon.api('GET', '/stats/farms/dns6/backends');
    for (const b of before.body.backends) t.equal(b.packets, 0, `backend ${b.id} starts at 0 packets`);
    const sent = await lab.udp(LAB_VIP6, 53, DATAGRAMS);
    t.equal(sent.received, DATAGRAMS, 'every datagram was answered');
    const chosen = lab.backends.findIndex((b) => b.name === Object.keys(sent.byBackend)[0]);
    t.ok(chosen >= 0, `one backend answered: ${JSON.stringify(sent.byBackend)}`);
    const after = await daemon.api('GET', '/stats/farms/dns6/backends');
    const byId = new Map<number, any>(after.body.backends.map((b: any) => [b.id, b]));
    t.equal(byId.get(chosen).packets, DATAGRAMS, 'the chosen backend counted every datagram');
    t.equal(byId.get(chosen).bytes, ipv6Bytes(DATAGRAMS), 'and their bytes (IPv6 length)');
    t.equal(byId.get(chosen).new_flows, 1, 'as one new flow');
    t.equal(byId.get(chosen).established, 1, 'pinned (established)');
    t.equal(byId.get(1 - chosen).packets, 0, 'the other backend counted nothing');
    t.equal(after.body.sessions.length, 1, 'one persistence session');
    t.match(after.body.sessions[0], { client: lab.client.ip6, id: chosen, type: 'dynamic' }, 'the session names the IPv6 client');
    const list = (await daemon.api('GET', '/stats/farms')).body.farms.find((f: any) => f.farmname === 'dns6');
    t.match(list, { vip: LAB_VIP6, packets: DATAGRAMS, bytes: ipv6Bytes(DATAGRAMS), new_flows: 1, dropped: 0 });
    const metrics = (await lab.exec(lab.lb.ns, ['curl', '-s', 'http://127.0.0.1:4444/metrics'])).stdout;
    t.match(metrics, new RegExp(`nftfarm_backend_packets_total\\{[^}]*ip="${lab.backends[chosen]!.ip6}"[^}]*\\} ${DATAGRAMS}`), '/metrics labels the IPv6 backend');
    t.equal((await daemon.api('DELETE', '/farms/dns6')).status, 200);
  });

  await t.test('check_ping over ICMPv6 takes a backend that stops answering out, and back', async (t) => {
    const created = await daemon.api('POST', '/monitoring/fg', { name: 'ping6', command: 'check_ping -H HOST -p 1 -c 500,50%', interval: 1, timeout: 1, fall: 2, rise: 2 });
    t.equal(created.status, 200, JSON.stringify(created.body));
    t.equal((await daemon.api('POST', '/farms/web6/fg', { name: 'ping6' })).status, 200);
    t.ok(await daemon.until(async () => (await daemon.api('GET', '/farms/web6')).body.backends.every((b: any) => b.status === 'up'), 10_000), 'both up');
    const b2 = lab.backends[1]!;
    await lab.execOk(b2.ns, ['nft', '-f', '-'], { input: 'table inet nfv6drop {\n\tchain input {\n\t\ttype filter hook input priority 0; policy accept;\n\t\ticmpv6 type echo-request drop\n\t}\n}\n' });
    t.ok(await daemon.until(async () => (await daemon.api('GET', '/farms/web6')).body.backends[1]?.status === 'down', 15_000), 'b2 down');
    const view = (await daemon.api('GET', '/farms/web6')).body;
    t.match(view.backends[1].status_reason, /ping fd00:250::22: 0\/1 replies/);
    const during = await lab.httpMany(`http://[${LAB_VIP6}]/`, 30);
    t.equal(during.ok, 30);
    t.equal(during.byBackend.b2 ?? 0, 0, 'no new flow to the failed backend');
    await lab.execOk(b2.ns, ['nft', 'delete', 'table', 'inet', 'nfv6drop']);
    t.ok(await daemon.until(async () => (await daemon.api('GET', '/farms/web6')).body.backends[1]?.status === 'up', 15_000), 'b2 up again');
    t.equal((await daemon.api('DELETE', '/farms/web6/fg/ping6')).status, 200);
  });

  await t.test('check_tcp against IPv6 backends: a stopped server goes down, and rejoins', async (t) => {
    const created = await daemon.api('POST', '/monitoring/fg', { name: 'tcp6', command: 'check_tcp -H HOST -p PORT -t 1', interval: 1, timeout: 1, fall: 2, rise: 2 });
    t.equal(created.status, 200, JSON.stringify(created.body));
    t.equal((await daemon.api('POST', '/farms/web6/fg', { name: 'tcp6' })).status, 200);
    // The IPv6 server of b2 alone: the IPv4 farm keeps its own.
    const server = await lab.startBackendServer(lab.backends[1]!, { httpPort: 8080, httpHosts: ['::'] });
    const moved = await daemon.api('PUT', '/farms/web6', { vport: '8080' });
    t.equal(moved.status, 200, JSON.stringify(moved.body));
    for (const id of [0, 1]) t.equal((await daemon.api('PUT', `/farms/web6/backends/${id}`, { port: 8080 })).status, 200);
    const b1 = await lab.startBackendServer(lab.backends[0]!, { httpPort: 8080, httpHosts: ['::'] });
    t.ok(await daemon.until(async () => (await daemon.api('GET', '/farms/web6')).body.params.status === 'up', 10_000), 'both up on 8080');
    await lab.stopProcess(server.child);
    t.ok(await daemon.until(async () => (await daemon.api('GET', '/farms/web6')).body.backends[1]?.status === 'down', 15_000), 'b2 down');
    t.match((await daemon.api('GET', '/farms/web6')).body.backends[1].status_reason, /connection refused/);
    const during = await lab.httpMany(`http://[${LAB_VIP6}]:8080/`, 20);
    t.equal(during.ok, 20, `served by b1 alone: ${JSON.stringify(during.errors)}`);
    t.equal(during.byBackend.b2 ?? 0, 0);
    await lab.startBackendServer(lab.backends[1]!, { httpPort: 8080, httpHosts: ['::'] });
    t.ok(await daemon.until(async () => (await daemon.api('GET', '/farms/web6')).body.backends[1]?.status === 'up', 15_000), 'b2 up again');
    const after = await lab.httpMany(`http://[${LAB_VIP6}]:8080/`, 40);
    t.ok((after.byBackend.b2 ?? 0) > 0, `b2 takes flows again ${JSON.stringify(after.byBackend)}`);
    await lab.stopProcess(b1.child);
    // The IPv4 farm was never affected.
    t.equal((await lab.httpMany(`http://${LAB_VIP}/`, 10)).ok, 10, 'the IPv4 farm still serves');
  });
});
