// Statistics (stored part plus zero counters), the DSR backend set-up scripts and /system/status.
import t from 'tap';
import { addBackend, buildTestApp, call, createFarm, zapiError } from '../helpers/api.js';
import { configDigest } from '../../src/config-doc/document.js';

t.test('GET /stats/farms lists every farm with zero counters', async (t) => {
  const { app } = await buildTestApp(t);
  t.strictSame((await call(app, 'GET', '/stats/farms')).body, { description: 'List all farms stats', farms: [] });
  await createFarm(app, 'f1');
  await createFarm(app, 'f2', '8000:8010', '10.250.0.11');
  await addBackend(app, 'f2', { ip: '10.250.0.20' });
  t.equal((await call(app, 'PUT', '/farms/f1/actions', { action: 'stop' })).status, 200);
  const res = await call(app, 'GET', '/stats/farms');
  t.equal(res.status, 200);
  t.strictSame(res.body, {
    description: 'List all farms stats',
    farms: [
      { farmname: 'f1', profile: 'l4xnat', status: 'down', vip: '10.250.0.10', vport: '80', established: 0, pending: 0, packets: 0, bytes: 0, new_flows: 0, dropped: 0 },
      { farmname: 'f2', profile: 'l4xnat', status: 'up', vip: '10.250.0.11', vport: '8000:8010', established: 0, pending: 0, packets: 0, bytes: 0, new_flows: 0, dropped: 0 },
    ],
  });
});

t.test('GET /stats/farms/{f} and /stats/farms/{f}/backends', async (t) => {
  const { app } = await buildTestApp(t);
  await createFarm(app, 'f1');
  await addBackend(app, 'f1', { ip: '10.250.0.20', port: 8080, weight: 2, priority: 3, max_conns: 7 });
  await addBackend(app, 'f1', { ip: '10.250.0.21' });
  t.equal((await call(app, 'PUT', '/farms/f1/backends/1/maintenance', { action: 'maintenance' })).status, 200);
  const expected = {
    description: 'Get farm stats',
    backends: [
      { id: 0, ip: '10.250.0.20', port: 8080, weight: 2, priority: 3, status: 'up', max_conns: 7, established: 0, pending: 0, packets: 0, bytes: 0, new_flows: 0 },
      { id: 1, ip: '10.250.0.21', port: null, weight: 1, priority: 1, status: 'maintenance', max_conns: 0, established: 0, pending: 0, packets: 0, bytes: 0, new_flows: 0 },
    ],
    sessions: [],
    total_sessions: 0,
  };
  for (const url of ['/stats/farms/f1', '/stats/farms/f1/backends']) {
    const res = await call(app, 'GET', url);
    t.equal(res.status, 200, url);
    t.strictSame(res.body, expected, url);
    const missing = await call(app, 'GET', url.replace('f1', 'nope'));
    t.equal(missing.status, 404);
    t.strictSame(missing.body, zapiError('Get farm stats', 'The farmname nope does not exist.'));
  }
  await createFarm(app, 'empty', '81');
  t.strictSame((await call(app, 'GET', '/stats/farms/empty')).body, { description: 'Get farm stats', backends: [], sessions: [], total_sessions: 0 });
});

t.test('GET /farms/{f}/backend-setup?os=linux', async (t) => {
  const { app } = await buildTestApp(t);
  await createFarm(app, 'web', '80');
  t.equal((await call(app, 'PUT', '/farms/web', { nattype: 'dsr' })).status, 200);
  const res = await call(app, 'GET', '/farms/web/backend-setup?os=linux&nic=ens3');
  t.equal(res.status, 200);
  t.match(res.headers['content-type'], /^text\/plain/);
  const script: string = res.body;
  t.type(script, 'string');
  t.ok(script.startsWith('#!/bin/sh\n'));
  t.ok(script.includes('VIP=10.250.0.10\n'), 'the VIP');
  t.ok(script.includes('NIC="${1:-ens3}"'), 'the NIC from the query');
  t.ok(script.includes('ip addr add "$VIP/32" dev lo'));
  t.ok(script.includes('net.ipv4.conf.all.arp_ignore = 1'));
  t.ok(script.includes('net.ipv4.conf.all.arp_announce = 2'));
  t.ok(script.includes('net.ipv4.conf.$NIC.arp_ignore = 1'));
  t.ok(script.includes('net.ipv4.conf.$NIC.arp_announce = 2'));
  t.ok(script.includes('cat > /etc/sysctl.d/90-nftfarm-web.conf <<SYSCTL'));
  t.ok(script.includes('sysctl -q -p /etc/sysctl.d/90-nftfarm-web.conf'));
  t.notOk(script.includes('UDP services must bind'), 'no UDP note for a tcp farm');

  const byDefault = await call(app, 'GET', '/farms/web/backend-setup');
  t.equal(byDefault.status, 200, 'linux is the default');
  t.ok(byDefault.body.includes('NIC="${1:-eth0}"'), 'eth0 is the default NIC');

  t.equal((await call(app, 'PUT', '/farms/web', { protocol: 'udp' })).status, 200);
  t.ok((await call(app, 'GET', '/farms/web/backend-setup')).body.includes('UDP services must bind to the VIP'));
});

t.test('GET /farms/{f}/backend-setup?os=windows', async (t) => {
  const { app } = await buildTestApp(t);
  await createFarm(app, 'web', '443');
  t.equal((await call(app, 'PUT', '/farms/web', { nattype: 'dsr' })).status, 200);
  const res = await call(app, 'GET', `/farms/web/backend-setup?os=windows&nic=${encodeURIComponent('Ethernet 2')}&loopback=LB0`);
  t.equal(res.status, 200);
  t.match(res.headers['content-type'], /^text\/plain/);
  const script: string = res.body;
  t.ok(script.includes("[string]$Nic = 'Ethernet 2',"), 'the NIC from the query');
  t.ok(script.includes("[string]$Loopback = 'LB0'"), 'the loopback from the query');
  t.ok(script.includes("$Vip = '10.250.0.10'"));
  t.ok(script.includes('netsh interface ipv4 add address "$Loopback" $Vip 255.255.255.255'));
  t.ok(script.includes('netsh interface ipv4 set interface "$Loopback" metric=254'));
  t.ok(script.includes('netsh interface ipv4 set interface "$Nic" weakhostreceive=enabled'));
  t.ok(script.includes('netsh interface ipv4 set interface "$Nic" weakhostsend=enabled'));
  t.ok(script.includes('netsh interface ipv4 set interface "$Loopback" weakhostreceive=enabled'));
  t.ok(script.includes('netsh interface ipv4 set interface "$Loopback" weakhostsend=enabled'));
  t.ok(script.includes('\r\n'), 'Windows line ends');
  t.notOk(script.includes('arp_ignore'));

  const defaults = (await call(app, 'GET', '/farms/web/backend-setup?os=windows')).body;
  t.ok(defaults.includes("[string]$Nic = 'Ethernet',") && defaults.includes("[string]$Loopback = 'Loopback'"), 'default adapter names');
});

t.test('backend-setup is refused for a non-dsr farm, a missing farm and bad names', async (t) => {
  const { app } = await buildTestApp(t);
  await createFarm(app, 'nat', '80');
  const nat = await call(app, 'GET', '/farms/nat/backend-setup?os=linux');
  t.equal(nat.status, 400);
  t.strictSame(
    nat.body,
    zapiError('Backend set-up script for farm nat', "The farm 'nat' uses nattype 'nat': backend set-up scripts are for nattype 'dsr'."),
  );
  const missing = await call(app, 'GET', '/farms/nope/backend-setup?os=linux');
  t.equal(missing.status, 404);
  t.strictSame(missing.body, zapiError('Backend set-up script for farm nope', 'Farm not found.'));
  const missingBadOs = await call(app, 'GET', '/farms/nope/backend-setup?os=macos');
  t.equal(missingBadOs.status, 404, 'a missing farm wins over a bad query');

  t.equal((await call(app, 'PUT', '/farms/nat', { nattype: 'dsr' })).status, 200);
  const badOs = await call(app, 'GET', '/farms/nat/backend-setup?os=macos');
  t.equal(badOs.status, 400);
  t.strictSame(badOs.body, zapiError('Backend set-up script for farm nat', "The parameter 'os' expects one of the following values: 'linux', 'windows'"));
  const badNames: [string, string, string][] = [
    ['nic=eth0;reboot', 'nic', 'eth0;reboot'],
    ['nic=$(id)', 'nic', '$(id)'],
    ['nic=averyveryverylongname', 'nic', 'averyveryverylongname'],
    ["os=windows&loopback=a'b", 'loopback', "a'b"],
    ['os=windows&nic=a"b', 'nic', 'a"b'],
  ];
  for (const [query, name, value] of badNames) {
    const res = await call(app, 'GET', `/farms/nat/backend-setup?${query.replace(/[;$()'"]/g, (c) => encodeURIComponent(c))}`);
    t.equal(res.status, 400, query);
    t.strictSame(res.body, zapiError('Backend set-up script for farm nat', `The value '${value}' is not valid for the parameter '${name}'.`), query);
  }
  const unknown = await call(app, 'GET', '/farms/nat/backend-setup?shell=bash');
  t.equal(unknown.status, 400, 'unknown query parameters are refused');
  t.equal(unknown.body.message, "The parameter 'shell' is not correct for this call. Please, try with: 'os', 'nic', 'loopback'");
});

t.test('GET /system/status', async (t) => {
  const { app, store } = await buildTestApp(t);
  await createFarm(app, 'f1');
  await addBackend(app, 'f1', { ip: '10.250.0.20' });
  await createFarm(app, 'f2', '81');
  t.equal((await call(app, 'PUT', '/farms/f2/actions', { action: 'stop' })).status, 200);
  const res = await call(app, 'GET', '/system/status');
  t.equal(res.status, 200);
  const f1 = store.getFarm('f1')!;
  const f2 = store.getFarm('f2')!;
  t.strictSame(res.body, {
    description: 'System status',
    params: {
      mode: 'off',
      store_generation: store.generation(),
      applied_generation: null,
      last_pass_at: null,
      first_pass_at: null,
      last_error: null,
      consecutive_failures: 0,
      passes: 0,
      last_pass: null,
      // The digest of GET /system/config's document (test/api/system-config.test.ts).
      config_digest: configDigest(store),
      farms: [
        { farmname: 'f1', status: 'up', dataplane: { generation: f1.generation, applied_generation: null, state: 'pending', error: null, interface: null, notice: null } },
        { farmname: 'f2', status: 'down', dataplane: { generation: f2.generation, applied_generation: null, state: 'pending', error: null, interface: null, notice: null } },
        // No reconciler runs in this app: nothing has been applied, stopped or not.
      ],
    },
  });
  t.equal(res.body.params.store_generation, 4, 'four writes so far');
});
