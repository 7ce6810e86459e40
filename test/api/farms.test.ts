// Farms: create, list, show, status, modify, delete, actions, copy_from, and the rules on VIPs,
// virtual ports and protocols, including the port conflict between running farms.
import t from 'tap';
import { addBackend, buildTestApp, call, createFarm, zapiError } from '../helpers/api.js';

const VIP = '10.250.0.10';

t.test('POST /farms creates a running farm and echoes the body with the interface', async (t) => {
  const { app, store } = await buildTestApp(t);
  const body = { farmname: 'web-1', profile: 'l4xnat', vip: VIP, vport: '80' };
  const res = await call(app, 'POST', '/farms', body);
  t.equal(res.status, 201);
  t.strictSame(res.body, {
    description: 'Creating a farm',
    params: { ...body, interface: 'eth0' },
    message: 'The farm web-1 has been created successfully.',
  });
  const farm = store.getFarm('web-1');
  t.match(farm, { vip: VIP, vport: '80', protocol: 'tcp', nattype: 'nat', algorithm: 'weight', persistence: '', ttl: 60, running: true });

  const onEth1 = await call(app, 'POST', '/farms', { farmname: 'other', profile: 'l4xnat', vip: '10.9.0.10', vport: '80' });
  t.equal(onEth1.status, 201);
  t.equal(onEth1.body.params.interface, 'eth1', 'the interface whose network holds the VIP');

  const again = await call(app, 'POST', '/farms', body);
  t.equal(again.status, 400);
  t.strictSame(again.body, zapiError('Creating a farm', 'Error trying to create a new farm, the farm name already exists.'));
});

t.test('the new farm starts at once: critical without a backend, up with one', async (t) => {
  const { app } = await buildTestApp(t);
  await createFarm(app, 'f1');
  t.strictSame((await call(app, 'GET', '/farms/f1/status')).body, { description: 'Show farm f1 status', params: { status: 'critical' } });
  await addBackend(app, 'f1', { ip: '10.250.0.20' });
  t.strictSame((await call(app, 'GET', '/farms/f1/status')).body, { description: 'Show farm f1 status', params: { status: 'up' } });
});

t.test('GET /farms lists every farm; GET /farms/{f} shows one with its backends', async (t) => {
  const { app } = await buildTestApp(t);
  t.strictSame((await call(app, 'GET', '/farms')).body, { description: 'List farms', params: [] });
  await createFarm(app, 'b-farm', '80,443,8000:8080');
  await createFarm(app, 'a-farm', '*', '10.250.0.11');
  await addBackend(app, 'a-farm', { ip: '10.250.0.20', port: 8080, weight: 3, priority: 2, max_conns: 100 });
  const list = await call(app, 'GET', '/farms');
  t.equal(list.status, 200);
  t.strictSame(list.body, {
    description: 'List farms',
    params: [
      { farmname: 'a-farm', profile: 'l4xnat', status: 'up', vip: '10.250.0.11', vport: '*' },
      { farmname: 'b-farm', profile: 'l4xnat', status: 'critical', vip: VIP, vport: '80,443,8000:8080' },
    ],
  });
  const one = await call(app, 'GET', '/farms/a-farm');
  t.equal(one.status, 200);
  t.strictSame(one.body, {
    description: 'List farm a-farm',
    params: {
      algorithm: 'weight',
      farmguardian: null,
      listener: 'l4xnat',
      nattype: 'nat',
      persistence: '',
      protocol: 'all',
      sessions: [],
      status: 'up',
      ttl: 60,
      vip: '10.250.0.11',
      vport: '*',
      dataplane: { generation: one.body.params.dataplane.generation, applied_generation: null, state: 'pending', error: null, interface: null, notice: null },
    },
    backends: [{ id: 0, ip: '10.250.0.20', port: 8080, weight: 3, priority: 2, max_conns: 100, status: 'up' }],
  });
  t.type(one.body.params.dataplane.generation, 'number');

  const missing = await call(app, 'GET', '/farms/nope');
  t.equal(missing.status, 404);
  t.strictSame(missing.body, zapiError('List farm nope', 'Farm not found.'));
  const missingStatus = await call(app, 'GET', '/farms/nope/status');
  t.equal(missingStatus.status, 404);
  t.strictSame(missingStatus.body, zapiError('Show farm nope status', 'Farm not found.'));
});

t.test('PUT /farms/{f} changes settings; aliases and numeric strings are normalized', async (t) => {
  const { app, store } = await buildTestApp(t);
  await createFarm(app, 'f1');
  const res = await call(app, 'PUT', '/farms/f1', {
    vport: '8080',
    protocol: 'udp',
    nattype: 'snat',
    algorithm: 'roundrobin',
    persistence: 'ip',
    ttl: '120',
  });
  t.equal(res.status, 200);
  t.strictSame(res.body, {
    description: "Modify L4xNAT farm 'f1'",
    params: { vport: '8080', protocol: 'udp', nattype: 'snat', algorithm: 'roundrobin', persistence: 'ip', ttl: 120 },
    message: 'Some parameters have been changed in farm f1.',
  });
  t.match(store.getFarm('f1'), { vport: '8080', protocol: 'udp', nattype: 'nat', algorithm: 'roundrobin', persistence: 'srcip', ttl: 120 });
  t.equal(typeof store.getFarm('f1')?.ttl, 'number');
  const shown = (await call(app, 'GET', '/farms/f1')).body.params;
  t.match(shown, { nattype: 'nat', persistence: 'ip', ttl: 120, protocol: 'udp', vport: '8080', algorithm: 'roundrobin' });

  const none = await call(app, 'PUT', '/farms/f1', { persistence: 'none' });
  t.equal(none.status, 200);
  t.equal(none.body.params.persistence, '');
  t.equal(store.getFarm('f1')?.persistence, '');
  t.equal((await call(app, 'PUT', '/farms/f1', { persistence: 'srcip_dstport' })).status, 200);
  t.equal((await call(app, 'GET', '/farms/f1')).body.params.persistence, 'srcip_dstport');
  t.equal((await call(app, 'PUT', '/farms/f1', { persistence: '' })).status, 200, 'blank persistence is allowed');
  t.equal(store.getFarm('f1')?.persistence, '');

  for (const nattype of ['dnat', 'stateless_dnat', 'nat']) {
    t.equal((await call(app, 'PUT', '/farms/f1', { nattype })).status, 200, nattype);
    t.equal(store.getFarm('f1')?.nattype, nattype);
  }
  t.equal((await call(app, 'PUT', '/farms/f1', { ttl: 30 })).status, 200);
  t.equal(store.getFarm('f1')?.ttl, 30);

  const missing = await call(app, 'PUT', '/farms/nope', { vport: '81' });
  t.equal(missing.status, 404);
  t.strictSame(missing.body, zapiError("Modify L4xNAT farm 'nope'", 'The farmname nope does not exist.'));
});

t.test("PUT algorithm 'prio' answers 410", async (t) => {
  const { app, store } = await buildTestApp(t);
  await createFarm(app, 'f1');
  const res = await call(app, 'PUT', '/farms/f1', { algorithm: 'prio' });
  t.equal(res.status, 410);
  t.strictSame(res.body, zapiError("Modify L4xNAT farm 'f1'", "'Prio' algorithm is not supported anymore."));
  t.equal(store.getFarm('f1')?.algorithm, 'weight');
});

t.test('renaming a farm with newfarmname', async (t) => {
  const { app, store } = await buildTestApp(t);
  await createFarm(app, 'f1');
  await createFarm(app, 'f2', '81');
  await addBackend(app, 'f1', { ip: '10.250.0.20' });
  const taken = await call(app, 'PUT', '/farms/f1', { newfarmname: 'f2' });
  t.equal(taken.status, 400);
  t.strictSame(taken.body, zapiError("Modify L4xNAT farm 'f1'", 'The farm f2 already exists, try another name.'));
  const res = await call(app, 'PUT', '/farms/f1', { newfarmname: 'renamed' });
  t.equal(res.status, 200);
  t.strictSame(res.body, {
    description: "Modify L4xNAT farm 'f1'",
    params: { newfarmname: 'renamed' },
    message: 'Some parameters have been changed in farm renamed.',
  });
  t.equal(store.getFarm('f1'), undefined);
  t.equal((await call(app, 'GET', '/farms/renamed')).body.backends.length, 1, 'the backends follow the farm');
});

t.test('vport grammar and ranges', async (t) => {
  const { app, store } = await buildTestApp(t);
  const create = (farmname: string, vport: string) => call(app, 'POST', '/farms', { farmname, profile: 'l4xnat', vip: VIP, vport });
  for (const vport of ['abc', '0', '65536', '80-90', '80,', ',80', '80:', ':80', '80 ', '*,80', '080', '80;90']) {
    const res = await create('bad', vport);
    t.equal(res.status, 400, vport);
    t.strictSame(res.body, zapiError('Creating a farm', `The value '${vport}' is not valid for the parameter 'vport'.`), vport);
  }
  const range = await create('bad', '90:80');
  t.equal(range.status, 400);
  t.strictSame(range.body, zapiError('Creating a farm', 'Range 90:80 in virtual port is not a valid value.'));
  const second = await create('bad', '70,100:95');
  t.equal(second.body.message, 'Range 100:95 in virtual port is not a valid value.');
  t.equal(store.getFarm('bad'), undefined);

  const good: [string, string][] = [
    ['single', '1'],
    ['top', '65535'],
    ['list', '80,443'],
    ['mixed', '1000:1010,2000,3000:3000'],
  ];
  for (const [name, vport] of good) {
    t.equal((await create(name, vport)).status, 201, vport);
    t.equal(store.getFarm(name)?.vport, vport);
  }
  const modRange = await call(app, 'PUT', '/farms/single', { vport: '90:80' });
  t.equal(modRange.status, 400);
  t.strictSame(modRange.body, zapiError("Modify L4xNAT farm 'single'", 'Range 90:80 in virtual port is not a valid value.'));
  const modBad = await call(app, 'PUT', '/farms/single', { vport: '1:2:3' });
  t.equal(modBad.body.message, "The value '1:2:3' is not valid for the parameter 'vport'.");
  t.equal(store.getFarm('single')?.vport, '1');
});

t.test("protocol 'all' and vport '*' go together", async (t) => {
  const { app, store } = await buildTestApp(t);
  await createFarm(app, 'star', '*');
  t.match(store.getFarm('star'), { protocol: 'all', vport: '*' }, "creating with '*' makes an 'all' farm");

  const tcpStar = await call(app, 'PUT', '/farms/star', { protocol: 'tcp' });
  t.equal(tcpStar.status, 400);
  t.strictSame(tcpStar.body, zapiError("Modify L4xNAT farm 'star'", "Protocol can not be 'tcp' with port '*'"));
  const portAll = await call(app, 'PUT', '/farms/star', { vport: '80' });
  t.equal(portAll.status, 400);
  t.strictSame(portAll.body, zapiError("Modify L4xNAT farm 'star'", "Port can not be '80' with protocol 'all'"));
  t.match(store.getFarm('star'), { protocol: 'all', vport: '*' });

  const both = await call(app, 'PUT', '/farms/star', { protocol: 'udp', vport: '53' });
  t.equal(both.status, 200, 'protocol and port together leave the all/* pair');
  t.match(store.getFarm('star'), { protocol: 'udp', vport: '53' });

  const vportStar = await call(app, 'PUT', '/farms/star', { vport: '*' });
  t.equal(vportStar.status, 200);
  t.strictSame(vportStar.body.params, { vport: '*', protocol: 'all' }, "vport '*' forces protocol 'all'");
  t.match(store.getFarm('star'), { protocol: 'all', vport: '*' });

  await createFarm(app, 'tcp80', '80', '10.250.0.11');
  const protoAll = await call(app, 'PUT', '/farms/tcp80', { protocol: 'all' });
  t.equal(protoAll.status, 200);
  t.strictSame(protoAll.body.params, { protocol: 'all', vport: '*' }, "protocol 'all' forces vport '*'");
  t.match(store.getFarm('tcp80'), { protocol: 'all', vport: '*' });

  const allWithPort = await call(app, 'PUT', '/farms/tcp80', { protocol: 'all', vport: '80' });
  t.equal(allWithPort.status, 200);
  t.match(store.getFarm('tcp80'), { protocol: 'all', vport: '*' }, "'all' wins over a port sent with it");
});

t.test('the VIP must be in a connected network, on create and on modify', async (t) => {
  const { app, store } = await buildTestApp(t);
  const message = "The VIP '192.168.77.1' is not in a network connected to this host: nftfarm announces a VIP on the interface whose network holds it.";
  const create = await call(app, 'POST', '/farms', { farmname: 'f1', profile: 'l4xnat', vip: '192.168.77.1', vport: '80' });
  t.equal(create.status, 400);
  t.strictSame(create.body, zapiError('Creating a farm', message));
  t.equal(store.getFarm('f1'), undefined);

  await createFarm(app, 'f1');
  const modify = await call(app, 'PUT', '/farms/f1', { vip: '192.168.77.1' });
  t.equal(modify.status, 400);
  t.strictSame(modify.body, zapiError("Modify L4xNAT farm 'f1'", message));
  t.equal(store.getFarm('f1')?.vip, VIP);
  t.equal((await call(app, 'PUT', '/farms/f1', { vip: '10.9.0.7' })).status, 200, 'another connected network is fine');
  t.equal(store.getFarm('f1')?.vip, '10.9.0.7');
});

t.test('DELETE /farms/{f}', async (t) => {
  const { app, store } = await buildTestApp(t);
  await createFarm(app, 'f1');
  await addBackend(app, 'f1', { ip: '10.250.0.20' });
  t.equal((await call(app, 'POST', '/farms/f1/fg', { name: 'check_tcp' })).status, 200);
  const farmId = store.getFarm('f1')?.id as number;
  const res = await call(app, 'DELETE', '/farms/f1');
  t.equal(res.status, 200);
  t.strictSame(res.body, { description: 'Delete farm f1', message: 'The Farm f1 has been deleted.', success: 'true' });
  t.equal(store.getFarm('f1'), undefined);
  t.strictSame(store.listBackends(farmId), [], 'its backends are gone');
  t.strictSame(store.farmsUsingCheck('check_tcp'), [], 'its health check link is gone');
  t.equal((await call(app, 'GET', '/farms/f1')).status, 404);
  const again = await call(app, 'DELETE', '/farms/f1');
  t.equal(again.status, 404);
  t.strictSame(again.body, zapiError('Delete farm f1', "The farm f1 doesn't exist, try another name."));
});

t.test('PUT /farms/{f}/actions: stop, start and restart', async (t) => {
  const { app, store } = await buildTestApp(t);
  await createFarm(app, 'f1');
  await addBackend(app, 'f1', { ip: '10.250.0.20' });
  const act = (action: string) => call(app, 'PUT', '/farms/f1/actions', { action });

  const stop = await act('stop');
  t.equal(stop.status, 200);
  t.strictSame(stop.body, {
    description: 'Set a new action in f1',
    params: { action: 'stop', status: 'down' },
    message: 'The action stop has been performed in farm f1.',
  });
  t.equal(store.getFarm('f1')?.running, false);
  t.equal((await call(app, 'GET', '/farms/f1/status')).body.params.status, 'down');
  t.equal((await call(app, 'GET', '/farms')).body.params[0].status, 'down');

  const start = await act('start');
  t.equal(start.status, 200);
  t.strictSame(start.body.params, { action: 'start', status: 'up' });
  t.equal(store.getFarm('f1')?.running, true);

  await act('stop');
  const restart = await act('restart');
  t.equal(restart.status, 200);
  t.strictSame(restart.body.params, { action: 'restart', status: 'up' });
  const restartRunning = await act('restart');
  t.strictSame(restartRunning.body.params, { action: 'restart', status: 'up' });
  const startRunning = await act('start');
  t.equal(startRunning.status, 200, 'starting a running farm succeeds');

  const missing = await call(app, 'PUT', '/farms/nope/actions', { action: 'stop' });
  t.equal(missing.status, 404);
  t.strictSame(missing.body, zapiError('Set a new action in nope', 'The farmname nope does not exist.'));
});

t.test('copy_from copies the settings, backends and health check; the copy starts at once', async (t) => {
  const { app, store } = await buildTestApp(t);
  await createFarm(app, 'src');
  t.equal((await call(app, 'PUT', '/farms/src', { protocol: 'udp', nattype: 'dnat', algorithm: 'hash_srcip', persistence: 'ip', ttl: 300 })).status, 200);
  await addBackend(app, 'src', { ip: '10.250.0.20', port: 8080, weight: 4, priority: 2, max_conns: 10 });
  await addBackend(app, 'src', { ip: '10.250.0.21' });
  t.equal((await call(app, 'POST', '/farms/src/fg', { name: 'check_udp' })).status, 200);
  t.equal((await call(app, 'PUT', '/farms/src/actions', { action: 'stop' })).status, 200);

  const body = { farmname: 'copy', profile: 'l4xnat', vip: '10.250.0.11', vport: '8053', copy_from: 'src' };
  const res = await call(app, 'POST', '/farms', body);
  t.equal(res.status, 201);
  t.strictSame(res.body, {
    description: 'Creating a farm',
    params: { ...body, interface: 'eth0' },
    message: 'The farm copy has been created successfully.',
  });
  const copy = (await call(app, 'GET', '/farms/copy')).body;
  t.match(copy.params, {
    vip: '10.250.0.11',
    vport: '8053',
    protocol: 'udp',
    nattype: 'dnat',
    algorithm: 'hash_srcip',
    persistence: 'ip',
    ttl: 300,
    farmguardian: 'check_udp',
    status: 'up',
  });
  t.strictSame(copy.backends, [
    { id: 0, ip: '10.250.0.20', port: 8080, weight: 4, priority: 2, max_conns: 10, status: 'up' },
    { id: 1, ip: '10.250.0.21', port: null, weight: 1, priority: 1, max_conns: 0, status: 'up' },
  ]);
  t.equal(store.getFarm('copy')?.running, true, 'the copy runs although the source is stopped');
  t.strictSame(store.farmsUsingCheck('check_udp'), ['copy', 'src']);
  t.equal((await call(app, 'GET', '/farms/src')).body.backends.length, 2, 'the source keeps its backends');

  const fromMissing = await call(app, 'POST', '/farms', { ...body, farmname: 'copy2', copy_from: 'nope' });
  t.equal(fromMissing.status, 404);
  t.strictSame(fromMissing.body, zapiError('Creating a farm', "The farm 'nope' does not exist."));

  const fromStar = await call(app, 'POST', '/farms', { ...body, farmname: 'copy3', vip: '10.250.0.12', vport: '*' });
  t.equal(fromStar.status, 201);
  t.match(store.getFarm('copy3'), { protocol: 'all', vport: '*' });
});

t.test('port conflicts between running farms', async (t) => {
  const { app, store } = await buildTestApp(t);
  await createFarm(app, 'a', '80');
  const create = (farmname: string, vport: string, vip = VIP) => call(app, 'POST', '/farms', { farmname, profile: 'l4xnat', vip, vport });
  const clash = (port: string, other = 'a', vip = VIP) =>
    `The '${vip}' ip and '${port}' port are being used for another farm. This farm should be stopped before modifying it (the farm '${other}' uses them)`;

  t.test('refused on create when VIP, protocol and ports overlap', async (t) => {
    for (const [vport, port] of [
      ['80', '80'],
      ['70:90', '80'],
      ['443,80', '80'],
      ['*', '*'],
    ] as const) {
      const res = await create('b', vport);
      t.equal(res.status, 400, vport);
      t.strictSame(res.body, zapiError('Creating a farm', clash(port)), vport);
    }
    t.equal(store.getFarm('b'), undefined);
  });

  t.test('allowed when the VIP or ports differ', async (t) => {
    t.equal((await create('other-vip', '80', '10.250.0.11')).status, 201);
    t.equal((await create('other-port', '81:90')).status, 201);
  });

  t.test('refused on PUT: ports, VIP and protocol', async (t) => {
    const port = await call(app, 'PUT', '/farms/other-port', { vport: '79:81' });
    t.equal(port.status, 400);
    t.strictSame(port.body, zapiError("Modify L4xNAT farm 'other-port'", clash('80')));
    t.equal(store.getFarm('other-port')?.vport, '81:90');

    const vip = await call(app, 'PUT', '/farms/other-vip', { vip: VIP });
    t.equal(vip.status, 400);
    t.strictSame(vip.body, zapiError("Modify L4xNAT farm 'other-vip'", clash('80')));
    t.equal(store.getFarm('other-vip')?.vip, '10.250.0.11');

    // a udp farm on port 80 of the same VIP is fine, until it becomes 'all'
    t.equal((await call(app, 'PUT', '/farms/other-vip', { protocol: 'udp' })).status, 200);
    t.equal((await call(app, 'PUT', '/farms/other-vip', { vip: VIP })).status, 200, 'udp and tcp do not overlap');
    const all = await call(app, 'PUT', '/farms/other-vip', { protocol: 'all' });
    t.equal(all.status, 400, "'all' overlaps tcp");
    t.match(all.body.message, /^The '10\.250\.0\.10' ip and '\*' port are being used for another farm/);
    const tcp = await call(app, 'PUT', '/farms/other-vip', { protocol: 'tcp' });
    t.equal(tcp.status, 400);
    t.strictSame(tcp.body, zapiError("Modify L4xNAT farm 'other-vip'", clash('80')));
    t.match(store.getFarm('other-vip'), { protocol: 'udp', vip: VIP });
  });

  t.test('a stopped farm does not conflict; starting it again does', async (t) => {
    t.equal((await call(app, 'PUT', '/farms/a/actions', { action: 'stop' })).status, 200);
    t.equal((await create('b', '80')).status, 201, 'the other farm is stopped');
    const start = await call(app, 'PUT', '/farms/a/actions', { action: 'start' });
    t.equal(start.status, 400);
    t.strictSame(start.body, zapiError('Set a new action in a', "There is another farm using the ip '10.250.0.10' and the port '80' (the farm 'b')"));
    t.equal(store.getFarm('a')?.running, false, 'still stopped');
    const restart = await call(app, 'PUT', '/farms/a/actions', { action: 'restart' });
    t.equal(restart.status, 400);
    t.equal(restart.body.message, "There is another farm using the ip '10.250.0.10' and the port '80' (the farm 'b')");

    t.equal((await call(app, 'PUT', '/farms/a', { vport: '8080' })).status, 200, 'a stopped farm may take a busy port');
    t.equal((await call(app, 'PUT', '/farms/a', { vport: '80' })).status, 200);
    t.equal((await call(app, 'PUT', '/farms/b/actions', { action: 'stop' })).status, 200);
    const started = await call(app, 'PUT', '/farms/a/actions', { action: 'start' });
    t.equal(started.status, 200);
    t.strictSame(started.body.params, { action: 'start', status: 'critical' });
  });

  t.test("an 'all' farm on '*' takes every port of its VIP", async (t) => {
    const star = await create('star', '*', '10.250.0.12');
    t.equal(star.status, 201);
    const res = await create('c', '5000', '10.250.0.12');
    t.equal(res.status, 400);
    t.strictSame(res.body, zapiError('Creating a farm', clash('5000', 'star', '10.250.0.12')));
  });
});
