// Backends: add, list, modify, delete, ids, duplicates, maintenance, and the DSR rules on
// backend ports and networks (checked whichever side changes).
import t from 'tap';
import { addBackend, buildTestApp, call, createFarm, zapiError } from '../helpers/api.js';

t.test('POST, GET, PUT and DELETE a backend', async (t) => {
  const { app, store } = await buildTestApp(t);
  await createFarm(app, 'f1');

  const add = await call(app, 'POST', '/farms/f1/backends', { ip: '10.250.0.20' });
  t.equal(add.status, 201);
  t.strictSame(add.body, {
    description: 'New farm backend',
    params: { id: 0, ip: '10.250.0.20', port: null, weight: 1, priority: 1, max_conns: 0, status: 'up' },
    message: 'Backend added.',
    status: 'up',
  });
  const full = await call(app, 'POST', '/farms/f1/backends', { ip: '10.9.0.5', port: 8080, weight: 9, priority: 2, max_conns: 500 });
  t.equal(full.status, 201);
  t.strictSame(full.body.params, { id: 1, ip: '10.9.0.5', port: 8080, weight: 9, priority: 2, max_conns: 500, status: 'up' });

  const list = await call(app, 'GET', '/farms/f1/backends');
  t.equal(list.status, 200);
  t.strictSame(list.body, { description: 'List backends', params: [add.body.params, full.body.params] });

  const put = await call(app, 'PUT', '/farms/f1/backends/1', { weight: 3, port: '' });
  t.equal(put.status, 200);
  t.strictSame(put.body, { description: 'Modify backend', params: { weight: 3, port: '' }, message: 'Backend modified.', status: 'up' });
  t.match(store.getBackend(store.getFarm('f1')!.id, 1), { weight: 3, port: null, priority: 2, maxConns: 500, ip: '10.9.0.5' });

  const del = await call(app, 'DELETE', '/farms/f1/backends/0');
  t.equal(del.status, 200);
  t.strictSame(del.body, { description: 'Delete backend', message: 'Backend removed', status: 'up', success: 'true' });
  const delLast = await call(app, 'DELETE', '/farms/f1/backends/1');
  t.strictSame(delLast.body, { description: 'Delete backend', message: 'Backend removed', status: 'critical', success: 'true' });
  t.strictSame((await call(app, 'GET', '/farms/f1/backends')).body.params, []);
});

t.test('404s: missing farm and missing backend', async (t) => {
  const { app } = await buildTestApp(t);
  await createFarm(app, 'f1');
  const farmGone = 'The farmname nope does not exist.';
  const cases: ['GET' | 'POST' | 'PUT' | 'DELETE', string, unknown, string, string][] = [
    ['GET', '/farms/nope/backends', undefined, 'List backends', farmGone],
    ['POST', '/farms/nope/backends', { ip: '10.250.0.20' }, 'New farm backend', farmGone],
    ['PUT', '/farms/nope/backends/0', { weight: 2 }, 'Modify backend', farmGone],
    ['DELETE', '/farms/nope/backends/0', undefined, 'Delete backend', farmGone],
    ['PUT', '/farms/nope/backends/0/maintenance', { action: 'up' }, 'Set backend status', farmGone],
    ['PUT', '/farms/f1/backends/3', { weight: 2 }, 'Modify backend', 'Could not find a backend with such id.'],
    ['PUT', '/farms/f1/backends/3', { weight: 0 }, 'Modify backend', 'Could not find a backend with such id.'],
    ['DELETE', '/farms/f1/backends/3', undefined, 'Delete backend', 'Could not find a backend with such id.'],
    ['PUT', '/farms/f1/backends/3/maintenance', { action: 'up' }, 'Set backend status', 'Could not find a backend with such id.'],
  ];
  for (const [method, url, body, description, message] of cases) {
    const res = await call(app, method, url, body);
    t.equal(res.status, 404, `${method} ${url}`);
    t.strictSame(res.body, zapiError(description, message));
  }
});

t.test('numbers given as strings are accepted and stored as numbers', async (t) => {
  const { app, store } = await buildTestApp(t);
  await createFarm(app, 'f1');
  const res = await call(app, 'POST', '/farms/f1/backends', { ip: '10.250.0.20', port: '80', weight: '5', priority: '2', max_conns: '0' });
  t.equal(res.status, 201);
  t.strictSame(res.body.params, { id: 0, ip: '10.250.0.20', port: 80, weight: 5, priority: 2, max_conns: 0, status: 'up' });
  const farmId = store.getFarm('f1')!.id;
  const { port, weight, priority, maxConns } = store.getBackend(farmId, 0)!;
  t.strictSame({ port, weight, priority, maxConns }, { port: 80, weight: 5, priority: 2, maxConns: 0 });
  const row = store.db.prepare('SELECT typeof(port) AS p, typeof(weight) AS w, typeof(max_conns) AS m FROM backends').get();
  t.strictSame(row, { p: 'integer', w: 'integer', m: 'integer' }, 'stored as integers, not text');

  t.equal((await call(app, 'PUT', '/farms/f1/backends/0', { weight: '7', max_conns: '25', port: '8080' })).status, 200);
  t.match(store.getBackend(farmId, 0), { weight: 7, maxConns: 25, port: 8080 });
  t.strictSame((await call(app, 'GET', '/farms/f1/backends')).body.params[0], {
    id: 0,
    ip: '10.250.0.20',
    port: 8080,
    weight: 7,
    priority: 2,
    max_conns: 25,
    status: 'up',
  });
});

t.test('ids are the lowest free integer', async (t) => {
  const { app } = await buildTestApp(t);
  await createFarm(app, 'f1');
  t.equal(await addBackend(app, 'f1', { ip: '10.250.0.20' }), 0);
  t.equal(await addBackend(app, 'f1', { ip: '10.250.0.21' }), 1);
  t.equal(await addBackend(app, 'f1', { ip: '10.250.0.22' }), 2);
  t.equal((await call(app, 'DELETE', '/farms/f1/backends/1')).status, 200);
  t.equal(await addBackend(app, 'f1', { ip: '10.250.0.23' }), 1, 'the freed id 1 is reused');
  t.equal(await addBackend(app, 'f1', { ip: '10.250.0.24' }), 3);
  t.equal((await call(app, 'DELETE', '/farms/f1/backends/0')).status, 200);
  t.equal(await addBackend(app, 'f1', { ip: '10.250.0.25' }), 0);
  const ids = (await call(app, 'GET', '/farms/f1/backends')).body.params.map((b: { id: number; ip: string }) => [b.id, b.ip]);
  t.strictSame(ids, [
    [0, '10.250.0.25'],
    [1, '10.250.0.23'],
    [2, '10.250.0.22'],
    [3, '10.250.0.24'],
  ]);

  await createFarm(app, 'f2', '81');
  t.equal(await addBackend(app, 'f2', { ip: '10.250.0.20' }), 0, 'ids are per farm');
});

t.test('the same ip:port twice is refused', async (t) => {
  const { app, store } = await buildTestApp(t);
  await createFarm(app, 'f1');
  await addBackend(app, 'f1', { ip: '10.250.0.20' });
  await addBackend(app, 'f1', { ip: '10.250.0.21', port: 8080 });
  const dupBare = await call(app, 'POST', '/farms/f1/backends', { ip: '10.250.0.20' });
  t.equal(dupBare.status, 400);
  t.strictSame(dupBare.body, zapiError('New farm backend', 'The IP 10.250.0.20 is already set in farm f1'));
  const dupPort = await call(app, 'POST', '/farms/f1/backends', { ip: '10.250.0.21', port: '8080' });
  t.equal(dupPort.status, 400);
  t.equal(dupPort.body.message, 'The IP 10.250.0.21 is already set in farm f1');
  t.equal(store.listBackends(store.getFarm('f1')!.id).length, 2);

  t.equal((await call(app, 'POST', '/farms/f1/backends', { ip: '10.250.0.20', port: 8081 })).status, 201, 'another port of the same IP');
  const modDup = await call(app, 'PUT', '/farms/f1/backends/2', { port: '' });
  t.equal(modDup.status, 400);
  t.strictSame(modDup.body, zapiError('Modify backend', 'The IP 10.250.0.20 is already set in farm f1'));
  t.equal(store.getBackend(store.getFarm('f1')!.id, 2)?.port, 8081);
  t.equal((await call(app, 'PUT', '/farms/f1/backends/2', { port: 8081, weight: 2 })).status, 200, 'a backend does not clash with itself');

  await createFarm(app, 'f2', '81');
  t.equal((await call(app, 'POST', '/farms/f2/backends', { ip: '10.250.0.20' })).status, 201, 'other farms are independent');
});

t.test('maintenance: drain, cut and up, and the farm status', async (t) => {
  const { app, store } = await buildTestApp(t);
  await createFarm(app, 'f1');
  await addBackend(app, 'f1', { ip: '10.250.0.20' });
  await addBackend(app, 'f1', { ip: '10.250.0.21' });
  const farmId = store.getFarm('f1')!.id;
  const maint = (id: number, body: unknown) => call(app, 'PUT', `/farms/f1/backends/${id}/maintenance`, body);

  const drain = await maint(0, { action: 'maintenance', mode: 'drain' });
  t.equal(drain.status, 200);
  t.strictSame(drain.body, {
    description: 'Set backend status',
    params: { action: 'maintenance', mode: 'drain', farm: { status: 'maintenance' } },
    message: 'The action maintenance has been performed in farm f1.',
    status: 'maintenance',
  });
  t.equal(store.getBackend(farmId, 0)?.maintenance, 'drain');
  const backends = (await call(app, 'GET', '/farms/f1')).body;
  t.equal(backends.params.status, 'maintenance');
  t.strictSame(
    backends.backends.map((b: { status: string }) => b.status),
    ['maintenance', 'up'],
  );

  const cut = await maint(1, { action: 'maintenance', mode: 'cut' });
  t.equal(cut.status, 200);
  t.strictSame(cut.body.params, { action: 'maintenance', mode: 'cut', farm: { status: 'critical' } }, 'no backend up: critical');
  t.equal(cut.body.status, 'critical');
  t.equal(store.getBackend(farmId, 1)?.maintenance, 'cut');

  const up = await maint(1, { action: 'up' });
  t.equal(up.status, 200);
  t.strictSame(up.body, {
    description: 'Set backend status',
    params: { action: 'up', farm: { status: 'maintenance' } },
    message: 'The action up has been performed in farm f1.',
    status: 'maintenance',
  });
  t.equal(store.getBackend(farmId, 1)?.maintenance, 'none');

  const defaultMode = await maint(1, { action: 'maintenance' });
  t.strictSame(defaultMode.body.params, { action: 'maintenance', mode: 'drain', farm: { status: 'critical' } }, 'mode defaults to drain');
  t.equal(store.getBackend(farmId, 1)?.maintenance, 'drain');

  await maint(0, { action: 'up' });
  await maint(1, { action: 'up' });
  t.equal((await call(app, 'GET', '/farms/f1/status')).body.params.status, 'up');

  const modeWithUp = await maint(0, { action: 'up', mode: 'cut' });
  t.equal(modeWithUp.status, 400);
  t.strictSame(modeWithUp.body, zapiError('Set backend status', "The parameter 'mode' is not correct for this call. Please, try with: 'action'"));
  t.equal(store.getBackend(farmId, 0)?.maintenance, 'none');

  t.equal((await call(app, 'PUT', '/farms/f1/actions', { action: 'stop' })).status, 200);
  t.equal((await maint(0, { action: 'maintenance' })).body.status, 'down', 'a stopped farm is down whatever its backends');
});

t.test('DSR: a backend port must be empty or the virtual port', async (t) => {
  const { app, store } = await buildTestApp(t);
  await createFarm(app, 'dsr', '80');
  t.equal((await call(app, 'PUT', '/farms/dsr', { nattype: 'dsr' })).status, 200);
  const farmId = store.getFarm('dsr')!.id;

  const other = await call(app, 'POST', '/farms/dsr/backends', { ip: '10.250.0.20', port: 8080 });
  t.equal(other.status, 400);
  t.strictSame(
    other.body,
    zapiError(
      'New farm backend',
      'The backend port 8080 differs from the virtual port 80: in DSR mode a backend port must be empty or equal to the virtual port, because only MAC addresses are rewritten.',
    ),
  );
  t.equal((await call(app, 'POST', '/farms/dsr/backends', { ip: '10.250.0.20', port: 80 })).status, 201, 'equal port');
  t.equal((await call(app, 'POST', '/farms/dsr/backends', { ip: '10.250.0.21', port: '' })).status, 201, 'empty port');
  t.equal((await call(app, 'POST', '/farms/dsr/backends', { ip: '10.250.0.22' })).status, 201, 'no port');

  const modify = await call(app, 'PUT', '/farms/dsr/backends/1', { port: 81 });
  t.equal(modify.status, 400);
  t.match(modify.body.message, /^The backend 1 port 81 differs from the virtual port 80: in DSR mode/);
  t.equal(store.getBackend(farmId, 1)?.port, null);

  const vport = await call(app, 'PUT', '/farms/dsr', { vport: '8080' });
  t.equal(vport.status, 400, 'a backend on port 80 keeps the virtual port at 80');
  t.strictSame(
    vport.body,
    zapiError(
      "Modify L4xNAT farm 'dsr'",
      'The backend 0 port 80 differs from the virtual port 8080: in DSR mode a backend port must be empty or equal to the virtual port, because only MAC addresses are rewritten.',
    ),
  );
  t.equal(store.getFarm('dsr')?.vport, '80');

  t.equal((await call(app, 'PUT', '/farms/dsr/backends/0', { port: '' })).status, 200);
  t.equal((await call(app, 'PUT', '/farms/dsr', { vport: '8080' })).status, 200, 'with only empty ports the virtual port may change');
});

t.test('DSR: the port rule the other way round, refusing nattype=dsr', async (t) => {
  const { app, store } = await buildTestApp(t);
  await createFarm(app, 'f1', '80');
  await addBackend(app, 'f1', { ip: '10.250.0.20' });
  await addBackend(app, 'f1', { ip: '10.250.0.21', port: 8080 });
  const res = await call(app, 'PUT', '/farms/f1', { nattype: 'dsr' });
  t.equal(res.status, 400);
  t.strictSame(
    res.body,
    zapiError(
      "Modify L4xNAT farm 'f1'",
      'The backend 1 port 8080 differs from the virtual port 80: in DSR mode a backend port must be empty or equal to the virtual port, because only MAC addresses are rewritten.',
    ),
  );
  t.equal(store.getFarm('f1')?.nattype, 'nat');
  const both = await call(app, 'PUT', '/farms/f1', { nattype: 'dsr', vport: '8080' });
  t.equal(both.status, 200, 'the merged result is checked: vport 8080 fits the backend on 8080');
  t.match(store.getFarm('f1'), { nattype: 'dsr', vport: '8080' });
});

t.test('DSR: with a vport list or range only empty backend ports are accepted', async (t) => {
  const { app } = await buildTestApp(t);
  for (const vport of ['80,443', '8000:8010']) {
    const name = vport.includes(',') ? 'list' : 'range';
    await createFarm(app, name, vport);
    t.equal((await call(app, 'PUT', `/farms/${name}`, { nattype: 'dsr' })).status, 200);
    const low = vport.includes(',') ? 80 : 8000;
    const res = await call(app, 'POST', `/farms/${name}/backends`, { ip: '10.250.0.20', port: low });
    t.equal(res.status, 400, vport);
    t.strictSame(
      res.body,
      zapiError(
        'New farm backend',
        `The backend port ${low} cannot be used with the virtual port '${vport}': in DSR mode with several virtual ports a backend port must be empty, because only MAC addresses are rewritten.`,
      ),
    );
    t.equal((await call(app, 'POST', `/farms/${name}/backends`, { ip: '10.250.0.20' })).status, 201, `${vport}: empty port`);
  }
  await createFarm(app, 'single', '9000');
  await addBackend(app, 'single', { ip: '10.250.0.20', port: 9000 });
  t.equal((await call(app, 'PUT', '/farms/single', { nattype: 'dsr' })).status, 200);
  const toList = await call(app, 'PUT', '/farms/single', { vport: '9000,9001' });
  t.equal(toList.status, 400);
  t.match(toList.body.message, /^The backend 0 port 9000 cannot be used with the virtual port '9000,9001'/);
});

t.test('DSR: backends must sit in the network of the VIP interface', async (t) => {
  const { app, store } = await buildTestApp(t);
  await createFarm(app, 'dsr', '80');
  t.equal((await call(app, 'PUT', '/farms/dsr', { nattype: 'dsr' })).status, 200);
  const outside = (ip: string) =>
    `The backend IP '${ip}' is not in the network 10.250.0.0/24 of interface 'eth0' that carries the VIP: ` +
    "in nattype 'dsr' frames are forwarded by MAC address, so backends must be directly connected to that network.";
  for (const ip of ['10.9.0.5', '192.168.1.1']) {
    const res = await call(app, 'POST', '/farms/dsr/backends', { ip });
    t.equal(res.status, 400, ip);
    t.strictSame(res.body, zapiError('New farm backend', outside(ip)));
  }
  t.equal(await addBackend(app, 'dsr', { ip: '10.250.0.20' }), 0);
  const move = await call(app, 'PUT', '/farms/dsr/backends/0', { ip: '10.9.0.5' });
  t.equal(move.status, 400);
  t.strictSame(move.body, zapiError('Modify backend', outside('10.9.0.5')));
  t.equal(store.getBackend(store.getFarm('dsr')!.id, 0)?.ip, '10.250.0.20');

  const vip = await call(app, 'PUT', '/farms/dsr', { vip: '10.9.0.10' });
  t.equal(vip.status, 400, 'moving the VIP away from the backends is refused too');
  t.match(vip.body.message, /^The backend IP '10\.250\.0\.20' is not in the network 10\.9\.0\.0\/24 of interface 'eth1'/);

  await createFarm(app, 'nat', '80', '10.250.0.11');
  await addBackend(app, 'nat', { ip: '10.9.0.5' });
  await addBackend(app, 'nat', { ip: '192.168.1.1' });
  const toDsr = await call(app, 'PUT', '/farms/nat', { nattype: 'dsr' });
  t.equal(toDsr.status, 400, 'a nat farm with routed backends cannot become dsr');
  t.strictSame(toDsr.body, zapiError("Modify L4xNAT farm 'nat'", outside('10.9.0.5')));
  t.equal(store.getFarm('nat')?.nattype, 'nat');

  const dsrVip = await call(app, 'PUT', '/farms/dsr', { vip: '192.168.77.1' });
  t.equal(dsrVip.status, 400);
  t.equal(
    dsrVip.body.message,
    "The VIP '192.168.77.1' is not in a network connected to this host: nftfarm announces a VIP on the interface whose network holds it.",
  );
});

t.test('dsr and stateless_dnat: max_conns is refused (no connection tracking), leastconn is accepted', async (t) => {
  const { app, store } = await buildTestApp(t);
  await createFarm(app, 'dsr', '80');
  await addBackend(app, 'dsr', { ip: '10.250.0.20', max_conns: 10 });
  const toDsr = await call(app, 'PUT', '/farms/dsr', { nattype: 'dsr' });
  t.equal(toDsr.status, 400);
  t.equal(
    toDsr.body.message,
    "The backend 0 sets max_conns 10, which is not available with nattype 'dsr': without connection tracking the load balancer cannot count connections. Use max_conns 0, or nattype 'nat' or 'dnat'.",
  );
  const toStateless = await call(app, 'PUT', '/farms/dsr', { nattype: 'stateless_dnat' });
  t.equal(toStateless.status, 400);
  t.match(toStateless.body.message, /^The backend 0 sets max_conns 10, which is not available with nattype 'stateless_dnat'/);
  t.equal(store.getFarm('dsr')?.nattype, 'nat', 'the refused changes changed nothing');
  t.equal((await call(app, 'PUT', '/farms/dsr/backends/0', { max_conns: 0 })).status, 200);
  t.equal((await call(app, 'PUT', '/farms/dsr', { nattype: 'dsr' })).status, 200);
  const limited = await call(app, 'POST', '/farms/dsr/backends', { ip: '10.250.0.21', max_conns: 5 });
  t.equal(limited.status, 400);
  t.match(limited.body.message, /^The backend sets max_conns 5, which is not available with nattype 'dsr'/);
  const leastconn = await call(app, 'PUT', '/farms/dsr', { algorithm: 'leastconn' });
  t.equal(leastconn.status, 200, 'leastconn is accepted and balances by weight, as in ZEVENET');
  t.equal(store.getFarm('dsr')?.algorithm, 'leastconn');
});

t.test('stateless_dnat: a backend port needs a single virtual port, and no sctp', async (t) => {
  const { app } = await buildTestApp(t);
  await createFarm(app, 'sl', '80,443');
  t.equal((await call(app, 'PUT', '/farms/sl', { nattype: 'stateless_dnat' })).status, 200);
  const ported = await call(app, 'POST', '/farms/sl/backends', { ip: '10.250.0.20', port: 8080 });
  t.equal(ported.status, 400);
  t.equal(
    ported.body.message,
    "The backend port 8080 cannot be used with the virtual port '80,443': in nattype 'stateless_dnat' a backend port needs a single virtual port, because replies are mapped back to it without connection tracking.",
  );
  t.equal((await call(app, 'PUT', '/farms/sl', { vport: '80' })).status, 200);
  t.equal((await call(app, 'POST', '/farms/sl/backends', { ip: '10.250.0.20', port: 8080 })).status, 201, 'accepted with one virtual port');
  const sctp = await call(app, 'PUT', '/farms/sl', { protocol: 'sctp' });
  t.equal(sctp.status, 400);
  t.match(sctp.body.message, /cannot be used with protocol 'sctp' in nattype 'stateless_dnat'/);
  const outside = await call(app, 'POST', '/farms/sl/backends', { ip: '10.9.0.5' });
  t.equal(outside.status, 400);
  t.match(outside.body.message, /in nattype 'stateless_dnat' frames are forwarded by MAC address/);
});
