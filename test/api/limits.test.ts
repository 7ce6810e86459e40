// Issue 11, findings 1, 2, 5 (API part) and 7: the API refuses what the data plane or the
// router cannot carry, with a 400 in the envelope that says which limit, and accepts every
// value up to it.
import t from 'tap';
import { addBackend, buildTestApp, call, createFarm } from '../helpers/api.js';
import { isZapiErrorEnvelope } from '../helpers/raw-http.js';

const name = (n: number, c = 'a') => c.repeat(n);

function refused(t: Tap, res: { status: number; body: any }, message: RegExp, what: string): void {
  t.equal(res.status, 400, `${what}: 400 (got ${res.status} ${JSON.stringify(res.body).slice(0, 300)})`);
  t.ok(isZapiErrorEnvelope(res.body), `${what}: in the envelope`);
  t.match(res.body?.message ?? '', message, `${what}: says why`);
}
type Tap = Parameters<Parameters<typeof t.test>[1]>[0];

t.test('finding 1/2: farm names have at most 64 characters, and every such name is reachable', async (t) => {
  const { app, store } = await buildTestApp(t);
  const longest = name(64, 'L');
  t.equal((await call(app, 'POST', '/farms', { farmname: longest, profile: 'l4xnat', vip: '10.250.0.10', vport: '80' })).status, 201);
  t.equal((await call(app, 'GET', `/farms/${longest}`)).status, 200, 'GET a 64-character farm');
  t.equal((await call(app, 'PUT', `/farms/${longest}`, { vport: '81' })).status, 200, 'PUT it');
  t.equal((await call(app, 'POST', `/farms/${longest}/backends`, { ip: '10.250.0.20' })).status, 201, 'add a backend to it');
  t.equal((await call(app, 'GET', `/stats/farms/${longest}`)).status, 200, 'its statistics');

  for (const n of [65, 112, 1000]) {
    refused(t, await call(app, 'POST', '/farms', { farmname: name(n), profile: 'l4xnat', vip: '10.250.0.10', vport: '90' }), /at most 64 characters/, `farmname of ${n}`);
    refused(t, await call(app, 'PUT', `/farms/${longest}`, { newfarmname: name(n) }), /at most 64 characters/, `newfarmname of ${n}`);
    refused(
      t,
      await call(app, 'POST', '/farms', { farmname: 'copy', profile: 'l4xnat', vip: '10.250.0.10', vport: '90', copy_from: name(n) }),
      /at most 64 characters/,
      `copy_from of ${n}`,
    );
  }
  const huge = await call(app, 'POST', '/farms', { farmname: name(100_000), profile: 'l4xnat', vip: '10.250.0.10', vport: '90' });
  t.ok(JSON.stringify(huge.body).length < 1000, 'a huge value is not echoed back whole');
  t.equal(store.listFarms().length, 1, 'nothing else was created');

  const tooLong = await call(app, 'GET', `/farms/${name(65)}`);
  t.equal(tooLong.status, 414, 'a 65-character path name is refused by the router');
  t.ok(isZapiErrorEnvelope(tooLong.body));

  t.equal((await call(app, 'PUT', `/farms/${longest}`, { newfarmname: 'short' })).status, 200, 'renamed');
  t.equal((await call(app, 'DELETE', '/farms/short')).status, 200, 'and deleted');
});

t.test('finding 1: persistence ttl is 1 to 2,592,000 seconds (30 days)', async (t) => {
  const { app, store } = await buildTestApp(t);
  await createFarm(app, 'f1');
  t.equal((await call(app, 'PUT', '/farms/f1', { persistence: 'ip', ttl: 2_592_000 })).status, 200, '30 days');
  t.equal(store.getFarm('f1')?.ttl, 2_592_000);
  for (const ttl of [2_592_001, 100_000_000, '99999999', 4_294_968]) {
    refused(t, await call(app, 'PUT', '/farms/f1', { ttl }), /'ttl' has to be an integer number between '1' and '2592000'/, `ttl ${ttl}`);
  }
  refused(t, await call(app, 'PUT', '/farms/f1', { ttl: 0 }), /between '1' and '2592000'/, 'ttl 0');
  t.equal(store.getFarm('f1')?.ttl, 2_592_000, 'unchanged');
});

t.test('backend fields are bounded', async (t) => {
  const { app } = await buildTestApp(t);
  await createFarm(app, 'f1');
  const id = await addBackend(app, 'f1', { ip: '10.250.0.20', port: 65535, weight: 9, priority: 9, max_conns: 2_147_483_647 });
  const cases: [Record<string, unknown>, RegExp][] = [
    [{ port: 0 }, /'port'/],
    [{ port: 65536 }, /'port'/],
    [{ weight: 0 }, /'weight' has to be an integer number between '1' and '9'/],
    [{ weight: 10 }, /'weight' has to be an integer number between '1' and '9'/],
    [{ priority: 10 }, /'priority' has to be an integer number between '1' and '9'/],
    [{ max_conns: -1 }, /'max_conns' has to be an integer number between '0' and '2147483647'/],
    [{ max_conns: 2_147_483_648 }, /'max_conns' has to be an integer number between '0' and '2147483647'/],
    [{ max_conns: '9999999999' }, /'max_conns' has to be an integer number between '0' and '2147483647'/],
  ];
  for (const [body, message] of cases) refused(t, await call(app, 'PUT', `/farms/f1/backends/${id}`, body), message, JSON.stringify(body));
});

t.test('finding 5: at most 1,024 backends per farm, refused with a clear 400', async (t) => {
  const { app, store } = await buildTestApp(t);
  await createFarm(app, 'f1');
  const farm = store.getFarm('f1')!;
  // 1,023 straight into the store (fast), the 1,024th and 1,025th through the API.
  store.write((g) => {
    for (let i = 0; i < 1023; i++) store.insertBackend(farm.id, { ip: `10.9.${(i >> 8) + 1}.${i & 255}`, port: 80, weight: 1, priority: 1, maxConns: 0 }, g);
  });
  t.equal((await call(app, 'POST', '/farms/f1/backends', { ip: '10.250.0.20' })).status, 201, 'the 1,024th');
  refused(t, await call(app, 'POST', '/farms/f1/backends', { ip: '10.250.0.21' }), /at most 1024 backends/, 'the 1,025th');
  t.equal(store.listBackends(farm.id).length, 1024);
  t.equal((await call(app, 'POST', '/farms', { farmname: 'copy', profile: 'l4xnat', vip: '10.250.0.11', vport: '80', copy_from: 'f1' })).status, 201, 'a copy of a full farm');
});

t.test('health check fields are bounded', async (t) => {
  const { app } = await buildTestApp(t);
  const base = { command: 'check_tcp -H HOST -p PORT' };
  t.equal((await call(app, 'POST', '/monitoring/fg', { name: name(64, 'c'), ...base, description: name(256, 'd') })).status, 200, 'longest name and description');
  const cases: [Record<string, unknown>, RegExp][] = [
    [{ name: name(65, 'c'), ...base }, /at most 64 characters/],
    [{ name: 'c1', ...base, description: name(257, 'd') }, /at most 256 characters/],
    [{ name: 'c2', command: `check_tcp -H HOST -p PORT -s ${name(600, 'x')}` }, /at most 512 characters/],
    [{ name: 'c3', ...base, interval: 0 }, /'interval' has to be an integer number between '1' and '86400'/],
    [{ name: 'c3', ...base, interval: 86401 }, /'interval' has to be an integer number between '1' and '86400'/],
    [{ name: 'c3', ...base, timeout: 86401 }, /'timeout' has to be an integer number between '1' and '86400'/],
    [{ name: 'c3', ...base, fall: 101 }, /'fall' has to be an integer number between '1' and '100'/],
    [{ name: 'c3', ...base, rise: 0 }, /'rise' has to be an integer number between '1' and '100'/],
  ];
  for (const [body, message] of cases) refused(t, await call(app, 'POST', '/monitoring/fg', body), message, JSON.stringify(body).slice(0, 60));
  const tooLong = await call(app, 'GET', `/monitoring/fg/${name(65, 'c')}`);
  t.equal(tooLong.status, 414, 'a 65-character check name in the path');
});

t.test('finding 7: backends and VIPs must be usable unicast addresses, in every nattype', async (t) => {
  const { app, store } = await buildTestApp(t);
  const bad: [string, RegExp][] = [
    ['0.0.0.0', /0\.0\.0\.0\/8/],
    ['0.1.2.3', /0\.0\.0\.0\/8/],
    ['127.0.0.1', /127\.0\.0\.0\/8 is loopback/],
    ['224.0.0.1', /224\.0\.0\.0\/4 is multicast/],
    ['239.255.255.250', /multicast/],
    ['240.0.0.1', /240\.0\.0\.0\/4 is reserved/],
    ['255.255.255.255', /limited broadcast/],
    ['10.250.0.255', /broadcast address of 10\.250\.0\.0\/24/],
    ['10.250.0.0', /network address of 10\.250\.0\.0\/24/],
  ];
  for (const nattype of ['nat', 'dnat', 'dsr', 'stateless_dnat']) {
    const farm = `f-${nattype.replace('_', '-')}`;
    await createFarm(app, farm, '80', `10.250.0.${store.listFarms().length + 10}`);
    t.equal((await call(app, 'PUT', `/farms/${farm}`, { nattype })).status, 200);
    const id = await addBackend(app, farm, { ip: '10.250.0.20' });
    for (const [ip, message] of bad) {
      refused(t, await call(app, 'POST', `/farms/${farm}/backends`, { ip }), message, `${nattype}: POST backend ${ip}`);
      refused(t, await call(app, 'PUT', `/farms/${farm}/backends/${id}`, { ip }), message, `${nattype}: PUT backend ${ip}`);
    }
    t.equal(store.listBackends(store.getFarm(farm)!.id).length, 1, `${nattype}: nothing added`);
  }
  for (const [ip, message] of bad) {
    refused(t, await call(app, 'POST', '/farms', { farmname: 'v', profile: 'l4xnat', vip: ip, vport: '80' }), message, `POST farm vip ${ip}`);
    refused(t, await call(app, 'PUT', '/farms/f-nat', { vip: ip }), message, `PUT farm vip ${ip}`);
  }
  t.equal((await call(app, 'POST', '/farms/f-nat/backends', { ip: '10.9.0.1' })).status, 201, 'an ordinary unicast address is fine');
  t.equal((await call(app, 'POST', '/farms/f-nat/backends', { ip: '192.0.2.1' })).status, 201, 'a routed address is fine in nat');
});
