/**
 * How new flows are spread, end to end through the API with real connections: weights over
 * 3,000 connections, persistence per client address (listed, flushed, expiring) in dsr and
 * nat, hash_srcip, a full flow map, and leastconn and max_conns from conntrack counts.
 */
import t from 'tap';
import { LAB_VIP, createLab, type Lab } from '../../lab/lab.js';
import { farmReady, startLabDaemon, type LabDaemon } from '../../lab/daemon.js';
import type { BackendReply } from '../../lab/results.js';

const VIP = LAB_VIP;
/** Extra client addresses, one persistence key each. */
const CLIENT_IPS = ['10.250.0.11', '10.250.0.12', '10.250.0.13', '10.250.0.14', '10.250.0.15', '10.250.0.16'];
let lab: Lab;

t.before(async () => {
  lab = await createLab({ prefix: 'nfbal', backends: 3 });
  await lab.configureDsrBackends(VIP);
  await lab.startHttpBackends(80);
  for (const ip of CLIENT_IPS) await lab.execOk(lab.client.ns, ['ip', 'addr', 'add', `${ip}/24`, 'dev', 'eth0']);
});
t.teardown(async () => lab?.destroy());

async function createFarm(daemon: LabDaemon, name: string, fields: Record<string, unknown>, backends: Record<string, unknown>[]): Promise<void> {
  const created = await daemon.api('POST', '/farms', { farmname: name, profile: 'l4xnat', vip: VIP, vport: '80' });
  if (created.status !== 201) throw new Error(JSON.stringify(created));
  const modified = await daemon.api('PUT', `/farms/${name}`, fields);
  if (modified.status !== 200) throw new Error(JSON.stringify(modified));
  for (const b of backends) {
    const added = await daemon.api('POST', `/farms/${name}/backends`, b);
    if (added.status !== 201) throw new Error(JSON.stringify(added));
  }
}

/** One HTTP request on a new connection from a given client address (curl --interface). */
async function requestFrom(source: string): Promise<string> {
  const r = await lab.execOk(lab.client.ns, ['curl', '-s', '-m', '3', '--interface', source, `http://${VIP}/`]);
  return (JSON.parse(r.stdout) as BackendReply).backend;
}

const idOf = (backend: string) => Number(backend.slice(1)) - 1;

/** The farm's latest change is in the kernel (whatever its backends' status). */
async function farmApplied(daemon: LabDaemon, name: string): Promise<boolean> {
  const d = (await daemon.api('GET', `/farms/${name}`)).body.params.dataplane;
  return d.state === 'applied' && d.applied_generation === d.generation;
}

t.test('weights 1:2:3 over 3,000 new connections: each share within 3 points of its weight', async (t) => {
  const daemon = await startLabDaemon(t, lab);
  const [b1, b2, b3] = lab.backends;
  await createFarm(daemon, 'w', { nattype: 'dsr' }, [
    { ip: b1!.ip, weight: 1 },
    { ip: b2!.ip, weight: 2 },
    { ip: b3!.ip, weight: 3 },
  ]);
  t.ok(await daemon.until(() => farmReady(daemon, 'w'), 10_000));
  const result = await lab.httpMany(`http://${VIP}/`, 3000);
  t.equal(result.ok, 3000, `all answered: ${JSON.stringify(result.errors)}`);
  const expected: Record<string, number> = { b1: 1 / 6, b2: 2 / 6, b3: 3 / 6 };
  for (const [b, share] of Object.entries(expected)) {
    const got = (result.byBackend[b] ?? 0) / 3000;
    t.ok(Math.abs(got - share) <= 0.03, `${b}: ${(got * 100).toFixed(1)}% for a weight share of ${(share * 100).toFixed(1)}%`);
  }
  // The load balancer's own per-backend packet counters saw the same split.
  const macs = await daemon.nft(['list', 'map', 'netdev', 'nftfarm', 'backend_macs']);
  const packets = [...macs.matchAll(/counter packets (\d+)/g)].map((m) => Number(m[1]));
  t.equal(packets.length, 3, 'a counter per backend');
  t.ok(packets.every((p) => p > 0), `every backend's counter moved: ${packets.join(', ')}`);
});

for (const nattype of ['dsr', 'nat'] as const) {
  t.test(`${nattype}: persistence by source address (ttl 4 s): sticky, listed, flushed, expiring`, async (t) => {
    const daemon = await startLabDaemon(t, lab);
    await createFarm(daemon, 'p', { nattype, persistence: 'ip', ttl: 4 }, lab.backends.map((b) => ({ ip: b.ip })));
    t.ok(await daemon.until(() => farmReady(daemon, 'p'), 10_000));

    const chosen = new Map<string, string>();
    for (const source of CLIENT_IPS) {
      const answers = new Set<string>();
      for (let i = 0; i < 6; i++) answers.add(await requestFrom(source));
      t.equal(answers.size, 1, `${source}: 6 new connections, one backend (${[...answers].join(', ')})`);
      chosen.set(source, [...answers][0]!);
    }
    t.ok(new Set(chosen.values()).size > 1, `the clients are spread: ${JSON.stringify(Object.fromEntries(chosen))}`);

    const listed = (await daemon.api('GET', '/farms/p')).body.params.sessions as { client: string; id: number; ttl: number; backend_ip: string }[];
    t.equal(listed.length, CLIENT_IPS.length, 'one session per client address');
    for (const s of listed) {
      t.equal(s.id, idOf(chosen.get(s.client)!), `${s.client}: the session names the backend it sticks to`);
      t.ok(s.ttl >= 0 && s.ttl <= 4, `remaining ttl ${s.ttl} s`);
    }

    // Flush one backend's sessions, then all.
    const victim = idOf([...chosen.values()][0]!);
    const mine = listed.filter((s) => s.id === victim).length;
    const one = await daemon.api('DELETE', `/farms/p/backends/${victim}/sessions`);
    t.equal(one.status, 200);
    t.equal(one.body.sessions, mine, `${mine} sessions of backend ${victim} deleted`);
    const left = (await daemon.api('GET', '/farms/p')).body.params.sessions as { id: number }[];
    t.equal(left.length, CLIENT_IPS.length - mine);
    t.notOk(left.some((s) => s.id === victim), 'none of that backend is left');
    const all = await daemon.api('DELETE', '/farms/p/sessions');
    t.equal(all.status, 200);
    t.equal(all.body.sessions, CLIENT_IPS.length - mine);
    t.same((await daemon.api('GET', '/farms/p')).body.params.sessions, [], 'no session is left');

    // Sessions come back with new connections, and leave after ttl seconds of idleness.
    for (const source of CLIENT_IPS) await requestFrom(source);
    t.equal((await daemon.api('GET', '/farms/p')).body.params.sessions.length, CLIENT_IPS.length);

    // A client whose backend is cut is balanced again (its session is forgotten), not dropped.
    const first = CLIENT_IPS[0]!;
    const stuck = idOf(await requestFrom(first));
    t.equal((await daemon.api('PUT', `/farms/p/backends/${stuck}/maintenance`, { action: 'maintenance', mode: 'cut' })).status, 200);
    t.ok(await daemon.until(() => farmApplied(daemon, 'p'), 5000));
    const moved = idOf(await requestFrom(first));
    t.not(moved, stuck, `${first} moved from the cut backend ${stuck} to ${moved}`);
    t.equal((await daemon.api('PUT', `/farms/p/backends/${stuck}/maintenance`, { action: 'up' })).status, 200);
    const expired = await daemon.until(async () => (await daemon.api('GET', '/farms/p')).body.params.sessions.length === 0, 8000);
    t.ok(expired, 'after the ttl the sessions are gone: a client may move');
    t.equal((await daemon.api('DELETE', '/farms/nosuch/sessions')).status, 404);
  });
}

t.test('hash_srcip: a client address always gets the same backend', async (t) => {
  const daemon = await startLabDaemon(t, lab);
  await createFarm(daemon, 'h', { nattype: 'dsr', algorithm: 'hash_srcip' }, lab.backends.map((b) => ({ ip: b.ip })));
  t.ok(await daemon.until(() => farmReady(daemon, 'h'), 10_000));
  const used = new Set<string>();
  for (const source of CLIENT_IPS) {
    const answers = new Set<string>();
    for (let i = 0; i < 5; i++) answers.add(await requestFrom(source));
    t.equal(answers.size, 1, `${source}: one backend for 5 connections`);
    used.add([...answers][0]!);
  }
  t.ok(used.size > 1, `the clients are spread over ${used.size} backends`);
});

t.test('a full flow map (16 entries) still balances every new connection', async (t) => {
  const daemon = await startLabDaemon(t, lab, { NFTFARM_FLOW_MAP_SIZE: '16' });
  await createFarm(daemon, 'f', { nattype: 'dsr' }, lab.backends.map((b) => ({ ip: b.ip })));
  t.ok(await daemon.until(() => farmReady(daemon, 'f'), 10_000));
  const result = await lab.httpMany(`http://${VIP}/`, 100);
  t.equal(result.ok, 100, `all 100 answered: ${JSON.stringify(result.errors)}`);
  t.ok(Object.keys(result.byBackend).length === 3, `all backends used: ${JSON.stringify(result.byBackend)}`);
  const flows = await daemon.nft(['list', 'map', 'netdev', 'nftfarm', 'flows_tcp']);
  t.match(flows, 'size 16');
  const entries = (flows.match(/ : 0x[0-9a-f]+| : \d+ /g) ?? []).length;
  t.ok(entries <= 16, `the map holds at most 16 pins (${entries})`);
});

t.test('nat: leastconn sends new flows to the least loaded backends; max_conns caps a backend', async (t) => {
  const daemon = await startLabDaemon(t, lab);
  const [b1, b2, b3] = lab.backends;
  await createFarm(daemon, 'lc', { nattype: 'nat', algorithm: 'leastconn' }, [{ ip: b1!.ip }]);
  t.ok(await daemon.until(() => farmReady(daemon, 'lc'), 10_000));
  const hold = lab.startHold(VIP, 80, 10);
  t.equal((await hold.ready()).byBackend.b1, 10, 'b1 carries 10 long-lived connections');
  for (const b of [b2!, b3!]) t.equal((await daemon.api('POST', '/farms/lc/backends', { ip: b.ip })).status, 201);
  t.ok(await daemon.until(() => farmReady(daemon, 'lc'), 10_000));
  await new Promise((r) => setTimeout(r, 2500)); // at least one count after the change
  const fresh = await lab.httpMany(`http://${VIP}/`, 30);
  t.equal(fresh.ok, 30);
  t.equal(fresh.byBackend.b1 ?? 0, 0, `no new flow goes to the backend with 10 connections: ${JSON.stringify(fresh.byBackend)}`);
  t.ok((fresh.byBackend.b2 ?? 0) > 0 && (fresh.byBackend.b3 ?? 0) > 0, 'the idle backends share them');

  // max_conns 5 on b1, which has 10: it gets no new flow, and says why.
  t.equal((await daemon.api('PUT', '/farms/lc', { algorithm: 'weight' })).status, 200);
  t.equal((await daemon.api('PUT', '/farms/lc/backends/0', { max_conns: 5 })).status, 200);
  const capped = await daemon.until(async () => {
    const b = (await daemon.api('GET', '/farms/lc')).body.backends[0];
    return /max_conns reached/.test(b.status_reason ?? '');
  }, 5000);
  t.ok(capped, 'b1 shows max_conns reached');
  const more = await lab.httpMany(`http://${VIP}/`, 30);
  t.equal(more.ok, 30);
  t.equal(more.byBackend.b1 ?? 0, 0, `a backend at max_conns gets no new flow: ${JSON.stringify(more.byBackend)}`);
  const result = await hold.stop();
  t.equal(result.broken, 0, 'its established connections continue');
});
