// IPv6 farms through the API (issue 13): canonical addresses in every answer, one family per
// farm, and the addresses no host can own refused with a clear 400, nothing stored.
import t from 'tap';
import { buildTestApp, call, zapiError } from '../helpers/api.js';

const VIP6 = '2001:db8:250::100';

t.test('an IPv6 farm and backends: stored and answered in the canonical form (RFC 5952)', async (t) => {
  const { app, store } = await buildTestApp(t);
  const created = await call(app, 'POST', '/farms', { farmname: 'v6', profile: 'l4xnat', vip: '2001:DB8:250:0:0:0:0:0100', vport: '80' });
  t.equal(created.status, 201, JSON.stringify(created.body));
  t.equal(created.body.params.vip, VIP6, 'the creation answer shows the canonical VIP');
  t.equal(created.body.params.interface, 'eth0');
  t.equal(store.getFarm('v6')?.vip, VIP6, 'stored canonical');
  const added = await call(app, 'POST', '/farms/v6/backends', { ip: '2001:0db8:0250::0021', port: 80 });
  t.equal(added.status, 201, JSON.stringify(added.body));
  t.equal(added.body.params.ip, '2001:db8:250::21');
  const modified = await call(app, 'PUT', '/farms/v6/backends/0', { ip: '2001:db8:250:0::22' });
  t.equal(modified.status, 200, JSON.stringify(modified.body));
  t.equal(modified.body.params.ip, '2001:db8:250::22', 'the modify answer shows the canonical address');
  const shown = await call(app, 'GET', '/farms/v6');
  t.equal(shown.body.params.vip, VIP6);
  t.equal(shown.body.backends[0].ip, '2001:db8:250::22');
  t.same((await call(app, 'GET', '/farms')).body.params.map((f: { vip: string }) => f.vip), [VIP6]);
  const moved = await call(app, 'PUT', '/farms/v6', { vip: '2001:db8:250::0:101' });
  t.equal(moved.status, 200);
  t.equal(moved.body.params.vip, '2001:db8:250::101');
});

t.test('a VIP and its backends are of one family: a mix is refused, naming the backend', async (t) => {
  const { app, store } = await buildTestApp(t);
  t.equal((await call(app, 'POST', '/farms', { farmname: 'v6', profile: 'l4xnat', vip: VIP6, vport: '80' })).status, 201);
  const mixed = await call(app, 'POST', '/farms/v6/backends', { ip: '10.250.0.21' });
  t.equal(mixed.status, 400);
  t.strictSame(
    mixed.body,
    zapiError(
      'New farm backend',
      `The backend address '10.250.0.21' is IPv4 but the VIP '${VIP6}' is IPv6: a farm's VIP and backends must be of one family (nftfarm does not translate between IPv4 and IPv6).`,
    ),
  );
  t.equal(store.listBackends(store.getFarm('v6')!.id).length, 0, 'nothing stored');

  t.equal((await call(app, 'POST', '/farms', { farmname: 'v4', profile: 'l4xnat', vip: '10.250.0.100', vport: '80' })).status, 201);
  t.equal((await call(app, 'POST', '/farms/v4/backends', { ip: '10.250.0.21' })).status, 201);
  const mixed4 = await call(app, 'POST', '/farms/v4/backends', { ip: '2001:db8:250::21' });
  t.equal(mixed4.status, 400);
  t.match(mixed4.body.message, /'2001:db8:250::21' is IPv6 but the VIP '10\.250\.0\.100' is IPv4/);
  const modify = await call(app, 'PUT', '/farms/v4/backends/0', { ip: '2001:db8:250::21' });
  t.equal(modify.status, 400);
  t.match(modify.body.message, /The backend 0 address '2001:db8:250::21' is IPv6/);
  const moveVip = await call(app, 'PUT', '/farms/v4', { vip: VIP6 });
  t.equal(moveVip.status, 400, 'a VIP cannot change family under its backends');
  t.match(moveVip.body.message, /The backend 0 address '10\.250\.0\.21' is IPv4 but the VIP '2001:db8:250::100' is IPv6/);
  t.equal(store.getFarm('v4')?.vip, '10.250.0.100', 'nothing stored');
  t.equal(store.listBackends(store.getFarm('v4')!.id)[0]?.ip, '10.250.0.21');
});

t.test('addresses no host can own: a clear 400 each, as VIP and as backend, nothing stored', async (t) => {
  const { app, store } = await buildTestApp(t);
  t.equal((await call(app, 'POST', '/farms', { farmname: 'v6', profile: 'l4xnat', vip: VIP6, vport: '80' })).status, 201);
  const cases: [string, RegExp][] = [
    ['fe80::1', /fe80::\/10 is link-local \(RFC 4291\): it means something only with an interface/],
    ['fe80::1%eth0', /a zone \('%\.\.\.'\) names an interface.*link-local addresses \(fe80::\/10\) are not accepted/],
    ['ff02::1', /ff00::\/8 is multicast/],
    ['ff05::1:3', /ff00::\/8 is multicast/],
    ['::', /:: is the unspecified address/],
    ['0:0:0:0:0:0:0:0', /:: is the unspecified address/],
    ['::1', /::1 is loopback/],
    ['::ffff:10.250.0.21', /::ffff:0:0\/96 is IPv4-mapped \(RFC 4291\): use the IPv4 address itself/],
    ['::ffff:a fa:15', /is not valid for the parameter/],
    ['2001:db8::1::2', /is not valid for the parameter/],
  ];
  for (const [ip, why] of cases) {
    const vip = await call(app, 'POST', '/farms', { farmname: 'bad', profile: 'l4xnat', vip: ip, vport: '80' });
    t.equal(vip.status, 400, `VIP ${ip}`);
    t.equal(vip.body.error, 'true');
    t.match(vip.body.message, why, `VIP ${ip}: ${vip.body.message}`);
    if (!ip.includes(' ') && !ip.includes('::1::')) t.match(vip.body.message, /a VIP must be a unicast address\.$/);
    const be = await call(app, 'POST', '/farms/v6/backends', { ip });
    t.equal(be.status, 400, `backend ${ip}`);
    t.match(be.body.message, why, `backend ${ip}: ${be.body.message}`);
    const moved = await call(app, 'PUT', '/farms/v6', { vip: ip });
    t.equal(moved.status, 400, `PUT vip ${ip}`);
  }
  t.equal(store.getFarm('bad'), undefined, 'no farm stored');
  t.equal(store.listBackends(store.getFarm('v6')!.id).length, 0, 'no backend stored');
  t.equal(store.getFarm('v6')?.vip, VIP6, 'the VIP unchanged');
});

t.test('the IPv4 equivalents stay refused for nat farms too', async (t) => {
  const { app } = await buildTestApp(t);
  t.equal((await call(app, 'POST', '/farms', { farmname: 'n', profile: 'l4xnat', vip: '10.250.0.100', vport: '80' })).status, 201);
  for (const ip of ['224.0.0.1', '0.0.0.0', '127.0.0.1', '255.255.255.255']) {
    const r = await call(app, 'POST', '/farms/n/backends', { ip });
    t.equal(r.status, 400, ip);
    t.match(r.body.message, /a backend must be a unicast address/);
  }
});

t.test('persistence keys of an IPv6 address and a port are refused for IPv6 farms', async (t) => {
  const { app, store } = await buildTestApp(t);
  t.equal((await call(app, 'POST', '/farms', { farmname: 'v6', profile: 'l4xnat', vip: VIP6, vport: '80' })).status, 201);
  t.equal((await call(app, 'PUT', '/farms/v6', { nattype: 'dsr', persistence: 'ip' })).status, 200, 'source address persistence is fine');
  for (const persistence of ['srcip_srcport', 'srcip_dstport']) {
    const r = await call(app, 'PUT', '/farms/v6', { persistence });
    t.equal(r.status, 400, persistence);
    t.match(r.body.message, new RegExp(`persistence '${persistence}' is not available for IPv6 VIPs`));
  }
  t.equal(store.getFarm('v6')?.persistence, 'srcip', 'nothing stored');
});

t.test('the configuration document carries IPv6 farms: exported canonical, applied back unchanged', async (t) => {
  const { app, store } = await buildTestApp(t);
  t.equal((await call(app, 'POST', '/farms', { farmname: 'v6', profile: 'l4xnat', vip: VIP6, vport: '80' })).status, 201);
  t.equal((await call(app, 'PUT', '/farms/v6', { nattype: 'dsr' })).status, 200);
  t.equal((await call(app, 'POST', '/farms/v6/backends', { ip: '2001:db8:250::21' })).status, 201);
  const doc = (await call(app, 'GET', '/system/config')).body.params;
  t.equal(doc.farms[0].vip, VIP6);
  t.equal(doc.farms[0].backends[0].ip, '2001:db8:250::21');
  const generation = store.generation();
  const again = await call(app, 'PUT', '/system/config', doc);
  t.equal(again.status, 200, JSON.stringify(again.body));
  t.equal(store.generation(), generation, 'applying the same document changes nothing');
  // Another spelling of the same addresses is the same configuration.
  const spelled = JSON.parse(JSON.stringify(doc));
  spelled.farms[0].vip = '2001:0DB8:0250:0:0:0:0:100';
  spelled.farms[0].backends[0].ip = '2001:db8:250:0::21';
  t.equal((await call(app, 'PUT', '/system/config', spelled)).status, 200);
  t.equal(store.generation(), generation, 'nothing changed');
  const mixed = JSON.parse(JSON.stringify(doc));
  mixed.farms[0].backends[0].ip = '10.250.0.21';
  const refused = await call(app, 'PUT', '/system/config', mixed);
  t.equal(refused.status, 400);
  t.match(JSON.stringify(refused.body), /'10\.250\.0\.21' is IPv4 but the VIP '2001:db8:250::100' is IPv6/);
});

t.test('backend set-up scripts for an IPv6 VIP: a /128 on the loopback, no ARP settings', async (t) => {
  const { app } = await buildTestApp(t);
  t.equal((await call(app, 'POST', '/farms', { farmname: 'v6', profile: 'l4xnat', vip: VIP6, vport: '53' })).status, 201);
  t.equal((await call(app, 'PUT', '/farms/v6', { nattype: 'dsr', protocol: 'udp' })).status, 200);
  const linux = await app.inject({ method: 'GET', url: '/zapi/v4.0/zapi.cgi/farms/v6/backend-setup?os=linux', headers: { ZAPI_KEY: 'test-key-123456' } });
  t.equal(linux.statusCode, 200);
  t.match(linux.body, `VIP=${VIP6}`);
  t.match(linux.body, 'ip -6 addr add "$VIP/128" dev lo nodad');
  t.match(linux.body, 'ExecStart=/bin/sh -c \'ip -6 addr show dev lo | grep -q " $VIP/128 " || ip -6 addr add $VIP/128 dev lo nodad\'', 'kept across reboots');
  t.notMatch(linux.body, 'net.ipv4', 'no ARP settings');
  t.match(linux.body, 'not to ::', 'UDP services must bind to the VIP');
  const windows = await app.inject({ method: 'GET', url: '/zapi/v4.0/zapi.cgi/farms/v6/backend-setup?os=windows', headers: { ZAPI_KEY: 'test-key-123456' } });
  t.equal(windows.statusCode, 200);
  t.match(windows.body, 'netsh interface ipv6 add address "$Loopback" $Vip/128 store=persistent');
  t.match(windows.body, 'netsh interface ipv6 set interface "$Nic" weakhostreceive=enabled');
  t.notMatch(windows.body, 'ipv4');
});
