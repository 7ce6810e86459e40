/**
 * Backend MAC addresses and VIP announcement edge cases, end to end: an unresolvable backend
 * says why it is unused, a backend whose MAC changes is followed, a VIP the load balancer
 * already owns works without proxy ARP, bursts of writes share passes (never more than one per write), `nftfarm rules`
 * prints what would be applied.
 */
import { spawnSync } from 'node:child_process';
import path from 'node:path';
import t from 'tap';
import { createLab, LAB_VIP, PACKAGE_ROOT, type Lab } from '../../lab/lab.js';
import { API_KEY, cleanEnv, createDsrFarm, farmReady, startLabDaemon, type LabDaemon } from '../../lab/daemon.js';

const VIP = LAB_VIP;
let lab: Lab;
let daemon: LabDaemon;

t.before(async () => {
  lab = await createLab({ prefix: 'nfnbr', backends: 2 });
  await lab.configureDsrBackends(VIP);
  await lab.startHttpBackends(80);
});
t.teardown(async () => lab?.destroy());

t.test('neighbours and announcements', async (t) => {
  daemon = await startLabDaemon(t, lab);
  await createDsrFarm(daemon, lab, 'web', VIP, '80');
  t.ok(await daemon.until(() => farmReady(daemon, 'web'), 10_000), 'the farm is up');

  await t.test('a backend whose MAC cannot be learned is not used, and says why', async (t) => {
    const added = await daemon.api('POST', '/farms/web/backends', { ip: '10.250.0.60' });
    t.equal(added.status, 201);
    const shown = await daemon.until(async () => {
      const farm = await daemon.api('GET', '/farms/web');
      return farm.body.backends.some((b: { ip: string; status: string }) => b.ip === '10.250.0.60' && b.status === 'down');
    }, 5000);
    t.ok(shown, 'the backend shows as down');
    const farm = await daemon.api('GET', '/farms/web');
    const ghost = farm.body.backends.find((b: { ip: string }) => b.ip === '10.250.0.60');
    t.match(ghost.status_reason, /waiting for the MAC address of 10\.250\.0\.60/);
    t.equal(farm.body.params.status, 'problem', 'the farm has a problem: one backend is down');
    const result = await lab.httpMany(`http://${VIP}/`, 30);
    t.equal(result.ok, 30, 'traffic only goes to the backends it can reach');
    t.equal((await daemon.api('DELETE', `/farms/web/backends/${ghost.id}`)).status, 200);
  });

  await t.test('a backend whose MAC changes is followed', async (t) => {
    const b2 = lab.backends[1]!;
    const newMac = '02:00:0a:fa:00:99';
    await lab.execOk(b2.ns, ['ip', 'link', 'set', 'eth0', 'address', newMac]);
    // The backend talks to the load balancer (as it would after a NIC swap): its ARP request
    // updates the load balancer's neighbour entry, and nftfarm follows the kernel.
    await lab.execOk(b2.ns, ['ip', 'neigh', 'flush', 'all']);
    await lab.exec(b2.ns, ['ping', '-c', '1', '-W', '1', lab.lb.ip]);
    const followed = await daemon.until(async () => (await daemon.nft(['list', 'map', 'netdev', 'nftfarm', 'backend_macs'])).includes(newMac), 10_000);
    t.ok(followed, 'the macs map carries the new MAC');
    const result = await lab.httpMany(`http://${VIP}/`, 30);
    t.equal(result.ok, 30, 'no request fails');
    t.ok((result.byBackend.b2 ?? 0) > 0, 'and b2 is served at its new MAC');
    t.match(daemon.logs(), 'backend MAC address changed');
  });

  await t.test('a burst of writes: every one applied, passes shared (never more than one per write)', async (t) => {
    const before = (await daemon.api('GET', '/system/status')).body.params.passes;
    const script = Array.from({ length: 20 }, (_, i) =>
      `curl -s -o /dev/null -X PUT -H 'ZAPI_KEY: ${API_KEY}' -H 'Content-Type: application/json' --data '{"weight":${(i % 9) + 1}}' http://127.0.0.1:4444/zapi/v4.0/zapi.cgi/farms/web/backends/0 &`,
    ).join('\n');
    await lab.execOk(lab.lb.ns, ['sh', '-c', `${script}\nwait`]);
    t.ok(await daemon.until(() => farmReady(daemon, 'web'), 5000));
    const after = (await daemon.api('GET', '/system/status')).body.params.passes;
    t.ok(after - before <= 20, `20 concurrent writes cost ${after - before} passes`);
    t.equal((await daemon.api('PUT', '/farms/web/backends/0', { weight: 1 })).status, 200);
  });

  await t.test('`nftfarm rules` prints the ruleset that is applied', async (t) => {
    t.ok(await daemon.until(() => farmReady(daemon, 'web'), 5000));
    const rules = spawnSync('ip', ['netns', 'exec', lab.lb.ns, process.execPath, path.join(PACKAGE_ROOT, 'bin', 'nftfarm'), 'rules', '--db', daemon.dbPath], {
      encoding: 'utf8',
      env: cleanEnv(),
    });
    t.equal(rules.status, 0, rules.stderr);
    t.match(rules.stdout, '# farm web (id 1): rendered on eth0');
    t.match(rules.stdout, 'table netdev nftfarm {');
    t.match(rules.stdout, 'chain farm_1 {');
    t.match(rules.stdout, lab.backends[0]!.mac);
    const check = spawnSync('ip', ['netns', 'exec', lab.lb.ns, 'nft', '-c', '-f', '-'], { input: rules.stdout, encoding: 'utf8' });
    t.equal(check.status, 0, `nft -c accepts it: ${check.stderr}`);
  });

  await t.test('a VIP that is already a local address works without proxy ARP', async (t) => {
    const localVip = '10.250.0.110';
    await lab.execOk(lab.lb.ns, ['ip', 'addr', 'add', `${localVip}/32`, 'dev', 'lo']);
    await lab.configureDsrBackends(localVip);
    t.equal((await daemon.api('POST', '/farms', { farmname: 'local', profile: 'l4xnat', vip: localVip, vport: '80' })).status, 201);
    t.equal((await daemon.api('PUT', '/farms/local', { nattype: 'dsr' })).status, 200);
    for (const b of lab.backends) t.equal((await daemon.api('POST', '/farms/local/backends', { ip: b.ip })).status, 201);
    t.ok(await daemon.until(() => farmReady(daemon, 'local'), 5000));
    t.notMatch((await lab.exec(lab.lb.ns, ['ip', 'neigh', 'show', 'proxy'])).stdout, localVip, 'no proxy entry: the kernel answers ARP itself');
    const result = await lab.httpMany(`http://${localVip}/`, 20);
    t.equal(result.ok, 20, JSON.stringify(result.errors));
    t.equal(Object.keys(result.byBackend).length, 2, 'both backends serve it');
    t.equal((await daemon.api('DELETE', '/farms/local')).status, 200);
  });
});

t.test('serve refuses to start without what it needs, and says what to do', async (t) => {
  const bin = path.join(PACKAGE_ROOT, 'bin', 'nftfarm');
  const noNft = spawnSync(process.execPath, [bin, 'serve', '--db', '/tmp/nftfarm-no-nft/db'], {
    encoding: 'utf8',
    env: { ...cleanEnv(), PATH: '/nonexistent' },
    timeout: 10_000,
  });
  t.equal(noNft.status, 1);
  t.match(noNft.stderr, /nft binary .* not found: install the nftables package/);
  const notRoot = spawnSync('setpriv', ['--reuid=65534', '--regid=65534', '--clear-groups', process.execPath, bin, 'serve', '--db', '/tmp/nftfarm-not-root/db'], {
    encoding: 'utf8',
    env: cleanEnv(),
    timeout: 10_000,
  });
  t.equal(notRoot.status, 1);
  t.match(notRoot.stderr, /runs as uid 65534 without CAP_NET_ADMIN: run nftfarm as root, or as its own user with CAP_NET_ADMIN and CAP_NET_RAW as ambient capabilities/);
});
