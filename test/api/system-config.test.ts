// GET/PUT /system/config and config_digest: a stable document free of local ids; the same
// configuration built in different orders gives the same bytes and digest; GET | PUT on an
// empty node reproduces it; a second PUT changes nothing; dry runs plan only; every bad field
// is refused with a 400 naming all problems, and nothing is stored.
import t from 'tap';
import { addBackend, buildTestApp, call, createFarm } from '../helpers/api.js';
import type { FastifyInstance } from 'fastify';

async function buildA(app: FastifyInstance): Promise<void> {
  t.equal((await call(app, 'POST', '/monitoring/fg', { name: 'web-tcp', command: 'check_tcp -H HOST -p PORT', interval: 5, timeout: 2 })).status, 200);
  await createFarm(app, 'web', '80');
  t.equal((await call(app, 'PUT', '/farms/web', { nattype: 'dsr', algorithm: 'hash_srcip' })).status, 200);
  for (const ip of ['10.250.0.21', '10.250.0.22', '10.250.0.23']) await addBackend(app, 'web', { ip, weight: ip.endsWith('3') ? 2 : 1 });
  t.equal((await call(app, 'POST', '/farms/web/fg', { name: 'web-tcp' })).status, 200);
  await createFarm(app, 'api', '8080', '10.250.0.11');
  await addBackend(app, 'api', { ip: '10.250.0.31', port: 9000 });
  t.equal((await call(app, 'PUT', '/farms/api/actions', { action: 'stop' })).status, 200);
}

/** The same configuration, reached in another order (and with a detour). */
async function buildB(app: FastifyInstance): Promise<void> {
  await createFarm(app, 'api', '8080', '10.250.0.11');
  await createFarm(app, 'web', '80');
  await addBackend(app, 'api', { ip: '10.250.0.99' });
  await addBackend(app, 'api', { ip: '10.250.0.31', port: 9000 });
  t.equal((await call(app, 'DELETE', '/farms/api/backends/0')).status, 200);
  t.equal((await call(app, 'PUT', '/farms/api/actions', { action: 'stop' })).status, 200);
  t.equal((await call(app, 'PUT', '/farms/web', { nattype: 'dsr', algorithm: 'hash_srcip' })).status, 200);
  for (const ip of ['10.250.0.23', '10.250.0.21', '10.250.0.22']) await addBackend(app, 'web', { ip, weight: ip.endsWith('3') ? 2 : 1 });
  t.equal((await call(app, 'POST', '/monitoring/fg', { name: 'web-tcp', command: 'check_tcp -H HOST -p PORT', interval: 5, timeout: 2 })).status, 200);
  t.equal((await call(app, 'POST', '/farms/web/fg', { name: 'web-tcp' })).status, 200);
}

const digestOf = async (app: FastifyInstance) => (await call(app, 'GET', '/system/status')).body.params.config_digest as string;

t.test('two nodes built in different orders export the same bytes and digest; GET | PUT onto an empty node gives it too', async (t) => {
  const a = await buildTestApp(t);
  const b = await buildTestApp(t);
  const c = await buildTestApp(t);
  await buildA(a.app);
  await buildB(b.app);
  const docA = await call(a.app, 'GET', '/system/config');
  const docB = await call(b.app, 'GET', '/system/config');
  t.equal(docA.status, 200);
  t.equal(JSON.stringify(docA.body.params), JSON.stringify(docB.body.params), 'same document, same bytes');
  t.match(docA.body.params.farms[1], { farmname: 'web', nattype: 'dsr', farmguardian: 'web-tcp', backends: [{ ip: '10.250.0.21' }, { ip: '10.250.0.22' }, { ip: '10.250.0.23', weight: 2 }] });
  t.notOk(JSON.stringify(docA.body.params).includes('"id"'), 'no local ids');
  t.match(await digestOf(a.app), /^sha256:[0-9a-f]{64}$/);
  t.equal(await digestOf(a.app), await digestOf(b.app), 'equal config_digest');
  t.equal(docA.body.digest, await digestOf(a.app), 'GET /system/config carries the same digest');

  const empty = await digestOf(c.app);
  t.not(empty, await digestOf(a.app));
  const dry = await call(c.app, 'PUT', '/system/config?dry_run=true', docA.body);
  t.equal(dry.status, 200, JSON.stringify(dry.body));
  t.equal(dry.body.params.dry_run, true);
  t.ok(dry.body.params.plan.create.some((e: { kind: string; name: string }) => e.kind === 'farm' && e.name === 'web'), 'the plan creates the farm');
  t.equal(await digestOf(c.app), empty, 'a dry run changes nothing');

  const applied = await call(c.app, 'PUT', '/system/config', docA.body);
  t.equal(applied.status, 200, JSON.stringify(applied.body));
  t.equal(await digestOf(c.app), await digestOf(a.app), 'the third node has the same digest');
  t.equal(applied.body.params.digest, await digestOf(a.app));

  const generation = c.store.generation();
  const again = await call(c.app, 'PUT', '/system/config', docA.body.params);
  t.equal(again.status, 200);
  t.strictSame(again.body.params.plan, { create: [], change: [], delete: [] }, 'the second apply changes nothing');
  t.equal(c.store.generation(), generation, 'not even the generation');
  t.match(again.body.message, /nothing was changed/);
});

t.test('PUT /system/config updates in place: an unchanged backend keeps its row, the rest is created, changed or deleted', async (t) => {
  const a = await buildTestApp(t);
  await buildA(a.app);
  const uidOf = (ip: string) => a.store.snapshot().farms.find((f) => f.farm.name === 'web')!.backends.find((b) => b.ip === ip)!.uid;
  const kept = uidOf('10.250.0.21');
  const doc = (await call(a.app, 'GET', '/system/config')).body.params;
  const web = doc.farms.find((f: { farmname: string }) => f.farmname === 'web');
  web.backends = web.backends.filter((b: { ip: string }) => b.ip !== '10.250.0.22');
  web.backends.push({ ip: '10.250.0.24', port: null, weight: 1, priority: 1, max_conns: 0, maintenance: 'drain' });
  web.backends[0].weight = 3;
  doc.farms = doc.farms.filter((f: { farmname: string }) => f.farmname !== 'api');
  doc.health_checks = doc.health_checks.filter((c: { name: string }) => c.name !== 'web-tcp');
  web.farmguardian = 'check_tcp';
  const res = await call(a.app, 'PUT', '/system/config', doc);
  t.equal(res.status, 200, JSON.stringify(res.body));
  t.match(res.body.params.plan, {
    create: [{ kind: 'backend', name: 'web 10.250.0.24' }],
    delete: [{ kind: 'health_check', name: 'web-tcp' }, { kind: 'farm', name: 'api' }, { kind: 'backend', name: 'web 10.250.0.22' }],
  });
  t.equal(uidOf('10.250.0.21'), kept, 'the changed backend kept its row (and its flows)');
  t.equal(a.store.getFarm('api'), undefined);
  t.equal(a.store.farmCheckName(a.store.getFarm('web')!.id), 'check_tcp');
  const exported = (await call(a.app, 'GET', '/system/config')).body.params;
  t.equal(JSON.stringify(exported.farms), JSON.stringify(doc.farms.map((f: { backends: { ip: string }[] }) => ({ ...f, backends: [...f.backends].sort((x, y) => (x.ip < y.ip ? -1 : 1)) }))));
});

t.test('PUT /system/config refuses bad documents with one 400 naming every problem, and stores nothing', async (t) => {
  const a = await buildTestApp(t);
  await buildA(a.app);
  const good = (await call(a.app, 'GET', '/system/config')).body.params;
  const before = { digest: await digestOf(a.app), generation: a.store.generation() };
  const variant = (change: (d: any) => void) => {
    const d = JSON.parse(JSON.stringify(good));
    change(d);
    return d;
  };
  const BAD: [string, any, RegExp][] = [
    ['no body', undefined, /No configuration has been sent/],
    ['not an object', [], /must be a JSON object/],
    ['wrong format', variant((d) => (d.format = 'v2')), /'format' must be 'nftfarm-config\/1'/],
    ['unknown top-level key', variant((d) => (d.extra = 1)), /'extra' is not correct/],
    ['farms not a list', variant((d) => (d.farms = {})), /'farms' must be a list/],
    ['farmname', variant((d) => (d.farms[0].farmname = 'a b')), /farmname/],
    ['duplicate farm', variant((d) => d.farms.push(d.farms[0])), /listed more than once/],
    ['vip', variant((d) => (d.farms[0].vip = '10.250.0')), /'vip' must be an IPv4 or IPv6 address/],
    ['vip not connected without BGP', variant((d) => (d.farms[0].vip = '192.168.7.1')), /not in a network connected to this host/],
    ['vport', variant((d) => (d.farms[0].vport = '80-90')), /'vport'/],
    ['protocol', variant((d) => (d.farms[0].protocol = 'icmp')), /'protocol' expects one of/],
    ['vport * without all', variant((d) => (d.farms[0].vport = '*')), /vport '\*' goes with protocol 'all'/],
    ['nattype', variant((d) => (d.farms[0].nattype = 'masq')), /'nattype' expects one of/],
    ['algorithm', variant((d) => (d.farms[0].algorithm = 'prio')), /'algorithm' expects one of/],
    ['persistence', variant((d) => (d.farms[0].persistence = 'cookie')), /'persistence' expects one of/],
    ['ttl', variant((d) => (d.farms[0].ttl = 0)), /'ttl'/],
    ['running', variant((d) => (d.farms[0].running = 'maybe')), /'running' must be true or false/],
    ['farmguardian unknown', variant((d) => (d.farms[1].farmguardian = 'nope')), /health check 'nope' is neither a template nor in health_checks/],
    ['unknown farm key', variant((d) => (d.farms[0].id = 3)), /'farms\[0\]\.id' is not correct/],
    ['backend ip', variant((d) => (d.farms[1].backends[0].ip = 'x')), /'ip' must be an IPv4 or IPv6 address/],
    ['backend of the other family', variant((d) => (d.farms[1].backends[0].ip = '2001:db8:250::21')), /'2001:db8:250::21' is IPv6 but the VIP .* is IPv4/],
    ['backend port', variant((d) => (d.farms[0].backends[0].port = 70000)), /'port' must be 1-65535/],
    ['backend weight', variant((d) => (d.farms[0].backends[0].weight = 10)), /'weight' has to be an integer number between '1' and '9'/],
    ['backend priority', variant((d) => (d.farms[0].backends[0].priority = 0)), /'priority'/],
    ['backend max_conns', variant((d) => (d.farms[0].backends[0].max_conns = -1)), /'max_conns'/],
    ['backend maintenance', variant((d) => (d.farms[0].backends[0].maintenance = 'off')), /'maintenance' expects one of/],
    ['duplicate backend', variant((d) => d.farms[1].backends.push(d.farms[1].backends[0])), /listed more than once/],
    ['dsr backend port', variant((d) => (d.farms[1].backends[0].port = 81)), /in DSR mode a backend port must be empty or equal/],
    ['dsr max_conns', variant((d) => (d.farms[1].backends[0].max_conns = 5)), /max_conns 5, which is not available with nattype 'dsr'/],
    ['dsr backend off the network', variant((d) => (d.farms[1].backends[0].ip = '10.9.0.5')), /not in the network 10\.250\.0\.0\/24/],
    ['port conflict', variant((d) => { d.farms[0].vip = d.farms[1].vip; d.farms[0].vport = '80'; d.farms[0].running = true; }), /are being used for another farm/],
    ['check command', variant((d) => (d.health_checks.find((c: any) => c.name === 'web-tcp').command = 'nmap HOST')), /'command'/],
    ['check timing', variant((d) => (d.health_checks.find((c: any) => c.name === 'web-tcp').timeout = 50)), /cannot be greater than the interval/],
    ['check fall', variant((d) => (d.health_checks.find((c: any) => c.name === 'web-tcp').fall = 0)), /'fall'/],
    ['template command changed', variant((d) => (d.health_checks.find((c: any) => c.name === 'check_tcp').command = 'check_tcp -H HOST -p 22')), /built-in template: its command/],
    ['bgp asn', variant((d) => (d.bgp.asn = 0)), /'bgp\.asn'/],
    ['bgp hold_time', variant((d) => (d.bgp.hold_time = 2)), /'bgp\.hold_time'/],
    ['bgp neighbors', variant((d) => (d.bgp.neighbors = [{ address: '1.2.3' }])), /'bgp\.neighbors\[0\]\.address'/],
    ['bgp router_id is node-specific', variant((d) => (d.bgp.router_id = '10.0.0.1')), /'bgp\.router_id' is not correct/],
    ['bgp enabled without asn', variant((d) => (d.bgp.enabled = true)), /cannot be enabled without 'bgp\.asn'/],
  ];
  for (const [what, body, message] of BAD) {
    const res = await call(a.app, 'PUT', '/system/config', body);
    t.equal(res.status, 400, `${what}: 400 (${JSON.stringify(res.body).slice(0, 200)})`);
    t.equal(res.body?.description, 'Apply configuration');
    t.match(res.body?.message, message, `${what}: ${res.body?.message}`);
  }
  const several = await call(a.app, 'PUT', '/system/config', variant((d) => { d.farms[0].ttl = 0; d.farms[1].backends[0].weight = 0; d.bgp.asn = -5; }));
  t.equal(several.status, 400);
  t.equal(several.body.problems.length, 3, `every problem named at once: ${several.body.message}`);
  t.strictSame({ digest: await digestOf(a.app), generation: a.store.generation() }, before, 'nothing was stored');
});

t.test('a document with BGP enabled may carry VIPs outside the connected networks; the router id stays the node\'s own', async (t) => {
  const a = await buildTestApp(t);
  t.equal((await call(a.app, 'PUT', '/system/bgp', { router_id: '10.250.0.3' })).status, 200);
  const doc = (await call(a.app, 'GET', '/system/config')).body.params;
  doc.bgp = { ...doc.bgp, enabled: true, asn: 65010, neighbors: [{ address: '10.250.0.1', asn: 65000 }], hold_time: 3 };
  doc.farms = [{ farmname: 'web', vip: '10.252.0.100', vport: '80', nattype: 'dsr', backends: [{ ip: '10.250.0.21' }] }];
  const res = await call(a.app, 'PUT', '/system/config', doc);
  t.equal(res.status, 200, JSON.stringify(res.body));
  t.match(a.store.bgpSettings(), { enabled: true, asn: 65010, routerId: '10.250.0.3', holdTime: 3 });
  t.match((await call(a.app, 'GET', '/system/config')).body.params.farms[0], { farmname: 'web', protocol: 'tcp', algorithm: 'weight', running: true, farmguardian: null });
});
