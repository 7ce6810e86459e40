/**
 * Counters end to end: the real daemon in the lab's load balancer, a DSR UDP farm, a known
 * number of datagrams from the client namespace. The farm's and the chosen backend's
 * counters (kept by nftables, read back over netlink) must move by exactly what was sent,
 * through the ZAPI stats routes and through /metrics (parsed by a Prometheus text parser).
 */
import t from 'tap';
import { fileURLToPath } from 'node:url';
import { createLab, LAB_VIP, type Lab } from '../../lab/lab.js';
import { farmReady, startLabDaemon, type LabDaemon } from '../../lab/daemon.js';

const VIP = LAB_VIP;
const PORT = 53;
const DATAGRAMS = 25;

interface Family {
  name: string;
  type: string;
  samples: { name: string; labels: Record<string, string>; value: number }[];
}
/** The official Prometheus Python client's parser (Debian's python3-prometheus-client). */
const PARSER = fileURLToPath(new URL('../helpers/prom-parse.py', import.meta.url));

let lab: Lab;
let daemon: LabDaemon;

t.before(async () => {
  lab = await createLab({ prefix: 'nfobs', backends: 2 });
  await lab.configureDsrBackends(VIP);
  await lab.startUdpBackends(VIP, PORT);
});
t.teardown(async () => lab?.destroy());

async function metricsText(): Promise<{ status: number; contentType: string; text: string }> {
  const r = await lab.exec(lab.lb.ns, ['curl', '-s', '-m', '10', '-D', '-', 'http://127.0.0.1:4444/metrics']);
  const [head, ...body] = r.stdout.split('\r\n\r\n');
  const status = Number(/^HTTP\/[\d.]+ (\d+)/.exec(head ?? '')?.[1]);
  const contentType = /content-type: ([^\r\n]+)/i.exec(head ?? '')?.[1] ?? '';
  return { status, contentType, text: body.join('\r\n\r\n') };
}

/** A sample by its full name (counters end in _total) and labels. */
function sampleOf(families: Family[], name: string, labels: Record<string, string>): number | undefined {
  for (const f of families) {
    const s = f.samples.find((x) => x.name === name && Object.entries(labels).every(([k, v]) => x.labels[k] === v));
    if (s) return s.value;
  }
  return undefined;
}

/** The bytes nftables counts for one datagram of the lab's UDP client: IP + UDP headers + `{"seq":N}`. */
const ipBytes = (count: number) => Array.from({ length: count }, (_, seq) => 20 + 8 + JSON.stringify({ seq }).length).reduce((a, b) => a + b, 0);

t.test('a DSR farm counts exactly the datagrams sent through it', async (t) => {
  daemon = await startLabDaemon(t, lab);
  t.equal((await daemon.api('POST', '/farms', { farmname: 'dns', profile: 'l4xnat', vip: VIP, vport: String(PORT) })).status, 201);
  t.equal((await daemon.api('PUT', '/farms/dns', { nattype: 'dsr', protocol: 'udp', persistence: 'ip', ttl: 120 })).status, 200);
  for (const b of lab.backends) t.equal((await daemon.api('POST', '/farms/dns/backends', { ip: b.ip })).status, 201);
  if (!t.ok(await daemon.until(() => farmReady(daemon, 'dns'), 10_000), 'the farm is applied and up')) t.comment(daemon.logs());

  const before = await daemon.api('GET', '/stats/farms/dns/backends');
  t.equal(before.status, 200);
  for (const b of before.body.backends) {
    t.equal(b.packets, 0, `backend ${b.id} starts at 0 packets`);
    t.equal(b.new_flows, 0);
    t.equal(b.established, 0);
  }
  t.strictSame(before.body.sessions, []);

  // One socket: one flow, so one backend takes every datagram.
  const sent = await lab.udp(VIP, PORT, DATAGRAMS);
  t.equal(sent.sent, DATAGRAMS);
  t.equal(sent.received, DATAGRAMS, 'every datagram was answered');
  const [chosenName] = Object.keys(sent.byBackend);
  const chosen = lab.backends.findIndex((b) => b.name === chosenName);
  t.ok(chosen >= 0, `answered by ${chosenName}`);
  const other = 1 - chosen;

  const after = await daemon.api('GET', '/stats/farms/dns/backends');
  t.equal(after.status, 200);
  const byId = new Map<number, any>(after.body.backends.map((b: any) => [b.id, b]));
  t.equal(byId.get(chosen).packets, DATAGRAMS, 'the chosen backend counted every datagram');
  t.equal(byId.get(chosen).bytes, ipBytes(DATAGRAMS), 'and their bytes (IP length)');
  t.equal(byId.get(chosen).new_flows, 1, 'as one new flow');
  t.equal(byId.get(chosen).established, 1, 'which is pinned (established)');
  t.equal(byId.get(chosen).pending, 0);
  t.equal(byId.get(other).packets, 0, 'the other backend counted nothing');
  t.equal(byId.get(other).new_flows, 0);
  t.equal(byId.get(other).established, 0);
  t.equal(after.body.sessions.length, 1, 'one persistence session');
  t.match(after.body.sessions[0], { client: lab.client.ip, id: chosen, session: lab.client.ip, type: 'dynamic' }, 'the persistence session names the client and the backend');
  t.equal(after.body.total_sessions, 1);
  // The remaining ttl may tick between two reads: compare without it.
  const withoutTtl = (body: any) => ({ ...body, sessions: body.sessions.map(({ ttl: _ttl, ...rest }: any) => rest) });
  t.strictSame(withoutTtl((await daemon.api('GET', '/stats/farms/dns')).body), withoutTtl(after.body), 'both stats routes answer the same');

  const list = await daemon.api('GET', '/stats/farms');
  t.equal(list.status, 200);
  t.match(list.body.farms, [
    { farmname: 'dns', status: 'up', established: 1, pending: 0, packets: DATAGRAMS, bytes: ipBytes(DATAGRAMS), new_flows: 1, dropped: 0 },
  ]);

  await t.test('/metrics shows the same counters in valid exposition format', async (t) => {
    const m = await metricsText();
    t.equal(m.status, 200, 'no key needed by default');
    t.match(m.contentType, /^text\/plain; version=0\.0\.4/);
    const parsed = await lab.exec(lab.lb.ns, ['/usr/bin/python3', PARSER], { input: m.text });
    t.equal(parsed.code, 0, `the Prometheus parser accepts it ${parsed.stderr}`);
    const families = JSON.parse(parsed.stdout) as Family[];
    t.ok(families.length > 10, `${families.length} metric families`);
    const farm = { farm: 'dns' };
    t.equal(sampleOf(families, 'nftfarm_farm_packets_total', farm), DATAGRAMS);
    t.equal(sampleOf(families, 'nftfarm_farm_bytes_total', farm), ipBytes(DATAGRAMS));
    t.equal(sampleOf(families, 'nftfarm_farm_new_flows_total', farm), 1);
    t.equal(sampleOf(families, 'nftfarm_farm_dropped_packets_total', farm), 0);
    t.equal(sampleOf(families, 'nftfarm_farm_established_flows', farm), 1);
    t.equal(sampleOf(families, 'nftfarm_farm_sessions', farm), 1);
    const chosenLabels = { farm: 'dns', backend: String(chosen), ip: lab.backends[chosen]!.ip };
    const otherLabels = { farm: 'dns', backend: String(other), ip: lab.backends[other]!.ip };
    t.equal(sampleOf(families, 'nftfarm_backend_packets_total', chosenLabels), DATAGRAMS);
    t.equal(sampleOf(families, 'nftfarm_backend_packets_total', otherLabels), 0);
    t.equal(sampleOf(families, 'nftfarm_backend_new_flows_total', chosenLabels), 1);
    t.equal(sampleOf(families, 'nftfarm_backend_established_flows', chosenLabels), 1);
    t.equal(sampleOf(families, 'nftfarm_backend_up', chosenLabels), 1);
    t.equal(sampleOf(families, 'nftfarm_backend_up', otherLabels), 1);
    t.equal(families.find((f) => f.name === 'nftfarm_backend_packets')?.type, 'counter');
    t.equal(families.find((f) => f.name === 'nftfarm_reconcile_pass_duration_seconds')?.type, 'histogram');
    t.ok((sampleOf(families, 'nftfarm_applied_generation', {}) ?? -1) > 0, 'the applied generation');
    t.equal(sampleOf(families, 'nftfarm_applied_generation', {}), sampleOf(families, 'nftfarm_desired_generation', {}), 'equals the desired one');
    t.ok((sampleOf(families, 'nftfarm_reconcile_pass_duration_seconds_count', { result: 'applied' }) ?? 0) > 0, 'applied passes were timed');
    t.ok(
      (sampleOf(families, 'nftfarm_api_request_duration_seconds_count', { route: '/zapi/v4.0/zapi.cgi/stats/farms/:farmname/backends', status: '200' }) ?? 0) >= 2,
      'API requests are timed by route pattern and status',
    );
    t.ok(families.some((f) => f.name === 'nftfarm_health_check_duration_seconds'), 'the health-check histogram is declared');
    t.ok((sampleOf(families, 'nftfarm_process_resident_memory_bytes', {}) ?? 0) > 0, 'process metrics');
  });

  await t.test('a second flow moves the counters again, by exactly its datagrams', async (t) => {
    const again = await lab.udp(VIP, PORT, 10);
    t.equal(again.received, 10);
    const list = await daemon.api('GET', '/stats/farms');
    t.equal(list.body.farms[0].packets, DATAGRAMS + 10);
    t.equal(list.body.farms[0].new_flows, 2, 'a new socket is a new flow');
    t.equal(list.body.farms[0].established, 2);
  });

  await t.test('the log has one line per applied farm change', async (t) => {
    const lines = daemon
      .logs()
      .split('\n')
      .filter((l) => l.includes('"msg":"applied farm change"'))
      .map((l) => JSON.parse(l));
    const created = lines.find((l) => l.farm === 'dns' && l.objects.includes('farm_1'));
    if (!created) t.comment(JSON.stringify(lines));
    t.ok(created, 'the change that rendered the farm names its objects');
    t.type(created?.generation, 'number');
    t.type(created?.passMs, 'number');
  });
});

t.test('NFTFARM_METRICS=key asks for the API key, off removes the route', async (t) => {
  const keyed = await startLabDaemon(t, lab, { NFTFARM_METRICS: 'key' });
  t.equal((await metricsText()).status, 401, 'no key: 401');
  const withKey = await lab.exec(lab.lb.ns, ['curl', '-s', '-o', '/dev/null', '-w', '%{http_code}', '-H', 'ZAPI_KEY: lab-test-key-0123456789', 'http://127.0.0.1:4444/metrics']);
  t.equal(withKey.stdout, '200', 'with the key: 200');
  await keyed.stop();
  await startLabDaemon(t, lab, { NFTFARM_METRICS: 'off' });
  const off = await metricsText();
  t.equal(off.status, 404);
  t.match(JSON.parse(off.text), { error: 'true', message: 'Request not found' }, 'the ZAPI error envelope');
});
