// PUT /system/bgp and GET /system/bgp: valid settings are stored and shown; every field's bad
// values are refused with a 400 that names the field, and nothing is stored.
import t from 'tap';
import { buildTestApp, call, createFarm } from '../helpers/api.js';

const GOOD = { enabled: true, asn: 65010, router_id: '10.250.0.2', neighbors: [{ address: '10.250.0.1', asn: 65000 }], hold_time: 3 };

t.test('GET /system/bgp answers the defaults: off, graceful restart off, no neighbours', async (t) => {
  const { app } = await buildTestApp(t);
  const res = await call(app, 'GET', '/system/bgp');
  t.equal(res.status, 200);
  t.match(res.body, {
    description: 'BGP settings',
    params: { enabled: false, speaker: 'bird', asn: null, router_id: null, hold_time: 90, neighbors: [], drain_time: 5, med: null, communities: [], graceful_restart: false, status: { speaker: 'off', running: false } },
  });
});

t.test('PUT /system/bgp stores the settings; fields left out keep their value', async (t) => {
  const { app, store } = await buildTestApp(t);
  const res = await call(app, 'PUT', '/system/bgp', GOOD);
  t.equal(res.status, 200, JSON.stringify(res.body));
  t.equal(res.body.message, 'The BGP settings have been changed.');
  t.match(res.body.params, { enabled: true, asn: 65010, router_id: '10.250.0.2', hold_time: 3, neighbors: [{ address: '10.250.0.1', asn: 65000 }] });
  t.equal((await call(app, 'PUT', '/system/bgp', { drain_time: '7', med: 50, communities: ['65000:100'] })).status, 200, 'numeric strings are accepted');
  t.match(store.bgpSettings(), { enabled: true, asn: 65010, holdTime: 3, drainTime: 7, med: 50, communities: ['65000:100'] });
  t.equal((await call(app, 'PUT', '/system/bgp', { router_id: null, hold_time: 0 })).status, 200, 'router_id null: the address toward the neighbour; hold time 0: no keepalives');
  t.match(store.bgpSettings(), { routerId: null, holdTime: 0 });
  t.equal((await call(app, 'PUT', '/system/bgp', { enabled: 'false' })).status, 200);
  t.equal(store.bgpSettings().enabled, false);
});

// Each bad value, with a word the message must contain (the field's name).
const BAD: [string, Record<string, unknown>, RegExp][] = [
  ['enabled not a boolean', { enabled: 'yes' }, /'enabled' expects true or false/],
  ['speaker unknown', { speaker: 'frr' }, /'speaker' expects one of the following values: 'bird', 'external'/],
  ['asn 0', { asn: 0 }, /'asn' has to be an AS number between '1' and '4294967294'/],
  ['asn too big', { asn: 4294967295 }, /'asn' has to be an AS number/],
  ['asn not a number', { asn: 'AS65000' }, /'asn'/],
  ['router_id not an address', { router_id: '10.0.0.256' }, /'router_id'/],
  ['router_id with leading zeros', { router_id: '10.0.0.01' }, /'router_id'/],
  ['hold_time 1', { hold_time: 1 }, /'hold_time' has to be 0 \(no keepalives\) or an integer number between '3' and '65535'/],
  ['hold_time 65536', { hold_time: 65536 }, /'hold_time'/],
  ['hold_time negative', { hold_time: -3 }, /'hold_time'/],
  ['neighbors not a list', { neighbors: { address: '10.250.0.1', asn: 65000 } }, /'neighbors' has to be a list/],
  ['neighbor address bad', { neighbors: [{ address: '10.250.0', asn: 65000 }] }, /'neighbors\[0\]\.address'/],
  ['neighbor asn missing', { neighbors: [{ address: '10.250.0.1' }] }, /'neighbors\[0\]\.asn' has to be an AS number/],
  ['neighbor unknown field', { neighbors: [{ address: '10.250.0.1', asn: 65000, password: 'x' }] }, /'neighbors\[0\]\.password' is not correct/],
  ['neighbor twice', { neighbors: [{ address: '10.250.0.1', asn: 65000 }, { address: '10.250.0.1', asn: 65001 }] }, /listed twice/],
  ['too many neighbors', { neighbors: Array.from({ length: 17 }, (_, i) => ({ address: `10.250.0.${i + 1}`, asn: 65000 })) }, /at most 16/],
  ['drain_time too long', { drain_time: 3601 }, /'drain_time' has to be an integer number between '0' and '3600'/],
  ['med negative', { med: -1 }, /'med'/],
  ['community malformed', { communities: ['65000-100'] }, /'communities\[0\]'/],
  ['community part too big', { communities: ['65536:1'] }, /'communities\[0\]'/],
  ['graceful_restart not a boolean', { graceful_restart: 1 }, /'graceful_restart' expects true or false/],
  ['unknown field', { local_pref: 100 }, /The parameter 'local_pref' is not correct for this call/],
  ['enabled without asn', { enabled: true, neighbors: [{ address: '10.250.0.1', asn: 65000 }] }, /cannot be enabled without 'asn'/],
  ['enabled without neighbors', { enabled: true, asn: 65010 }, /cannot be enabled without 'neighbors'/],
];

t.test('PUT /system/bgp refuses each bad field with a 400 naming it, and stores nothing', async (t) => {
  const { app, store } = await buildTestApp(t);
  for (const [what, body, message] of BAD) {
    const before = { settings: store.bgpSettings(), generation: store.generation() };
    const res = await call(app, 'PUT', '/system/bgp', body);
    t.equal(res.status, 400, `${what}: 400`);
    t.equal(res.body.error, 'true', `${what}: the ZAPI error envelope`);
    t.equal(res.body.description, 'Modify BGP settings');
    t.match(res.body.message, message, `${what}: ${res.body.message}`);
    t.ok(Array.isArray(res.body.problems) && res.body.problems.length >= 1, `${what}: problems listed`);
    t.strictSame({ settings: store.bgpSettings(), generation: store.generation() }, before, `${what}: nothing stored`);
  }
  const empty = await call(app, 'PUT', '/system/bgp', {});
  t.equal(empty.status, 400);
  t.match(empty.body.message, /No parameter has been sent/);
  const many = await call(app, 'PUT', '/system/bgp', { asn: 0, hold_time: 2, med: 'x' });
  t.equal(many.status, 400);
  t.equal(many.body.problems.length, 3, 'every problem is named at once');
  const good = await call(app, 'PUT', '/system/bgp', { ...GOOD, asn: 'x' });
  t.equal(good.status, 400, 'one bad field refuses the good ones too');
  t.equal(store.bgpSettings().enabled, false);
});

t.test('speaker external: no ASN or neighbour needed (the operator\'s daemon announces)', async (t) => {
  const { app, store } = await buildTestApp(t);
  const res = await call(app, 'PUT', '/system/bgp', { enabled: true, speaker: 'external' });
  t.equal(res.status, 200, JSON.stringify(res.body));
  t.match(store.bgpSettings(), { enabled: true, speaker: 'external', asn: null, neighbors: [] });
  t.equal((await call(app, 'PUT', '/system/bgp', { speaker: 'bird' })).status, 400, 'back to bird: the ASN and neighbours are needed again');
});

t.test('with BGP on, a VIP outside the connected networks is accepted (the router reaches it through the node)', async (t) => {
  const { app, store } = await buildTestApp(t);
  const outside = { farmname: 'web', profile: 'l4xnat', vip: '10.252.0.100', vport: '80' };
  t.equal((await call(app, 'POST', '/farms', outside)).status, 400, 'refused without BGP');
  t.equal((await call(app, 'PUT', '/system/bgp', GOOD)).status, 200);
  const created = await call(app, 'POST', '/farms', outside);
  t.equal(created.status, 201, JSON.stringify(created.body));
  t.equal((await call(app, 'PUT', '/farms/web', { nattype: 'dsr' })).status, 200);
  t.equal((await call(app, 'POST', '/farms/web/backends', { ip: '10.250.0.21' })).status, 201);
  const offNet = await call(app, 'POST', '/farms/web/backends', { ip: '10.9.0.5' });
  t.equal(offNet.status, 400, 'dsr backends stay on one network: the one of the first backend');
  t.match(offNet.body.message, /not in the network 10\.250\.0\.0\/24/);
  await createFarm(app, 'local', '80');
  const gen = store.snapshot().farms.map((f) => f.farm.generation);
  t.equal((await call(app, 'PUT', '/system/bgp', { enabled: false })).status, 200);
  t.ok(store.snapshot().farms.every((f, i) => f.farm.generation > gen[i]!), 'turning BGP off marks every farm changed (VIP placement differs)');
  t.equal(store.snapshot().routedVips, false);
});
