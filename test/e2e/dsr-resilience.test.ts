/**
 * The data plane never blinks: long-lived connections through a DSR farm survive changes to
 * other farms, daemon restarts (graceful and kill -9), and a kernel ruleset flushed behind
 * nftfarm's back is repaired. A transaction the kernel refuses leaves the old ruleset in force.
 */
import t from 'tap';
import { createLab, LAB_VIP, type Lab } from '../../src/lab/lab.js';
import { createDsrFarm, farmReady, startLabDaemon, type LabDaemon } from '../../src/lab/daemon.js';

const VIP = LAB_VIP;
const OTHER_VIP = '10.250.0.101';
let lab: Lab;
let daemon: LabDaemon;

t.before(async () => {
  lab = await createLab({ prefix: 'nfres', backends: 3 });
  await lab.configureDsrBackends(VIP);
  await lab.startHttpBackends(80);
});
t.teardown(async () => lab?.destroy());

t.test('resilience of a running DSR farm', async (t) => {
  daemon = await startLabDaemon(t, lab);
  await createDsrFarm(daemon, lab, 'web', VIP, '80');
  // b3 joins later: the farm starts with b1 and b2.
  t.equal((await daemon.api('DELETE', '/farms/web/backends/2')).status, 200);
  if (!t.ok(await daemon.until(() => farmReady(daemon, 'web'), 10_000), 'the farm is up')) t.comment(daemon.logs());

  await t.test('backends added, drained and removed break no flow the change does not concern', async (t) => {
    const hold = lab.startHold(VIP, 80, 20);
    const ready = await hold.ready();
    t.equal(ready.opened, 20, `20 connections open ${JSON.stringify(ready.byBackend)}`);
    const onB2 = ready.byBackend.b2 ?? 0;
    t.ok(onB2 > 0 && onB2 < 20, 'both backends carry some');

    // A third backend: the Maglev table changes, pinned flows stay where they are.
    t.equal((await daemon.api('POST', '/farms/web/backends', { ip: lab.backends[2]!.ip })).status, 201);
    t.ok(await daemon.until(() => farmReady(daemon, 'web'), 5000));
    const spread = await lab.httpMany(`http://${VIP}/`, 60);
    t.equal(spread.ok, 60);
    t.ok((spread.byBackend.b3 ?? 0) > 0, `new flows reach b3: ${JSON.stringify(spread.byBackend)}`);

    // Drain b2: its established flows continue, new flows avoid it.
    t.equal((await daemon.api('PUT', '/farms/web/backends/1/maintenance', { action: 'maintenance', mode: 'drain' })).status, 200);
    t.ok(await daemon.until(async () => (await daemon.api('GET', '/farms/web')).body.params.status === 'maintenance', 5000));
    const drained = await lab.httpMany(`http://${VIP}/`, 40);
    t.equal(drained.ok, 40);
    t.equal(drained.byBackend.b2 ?? 0, 0, `no new flow goes to the drained backend: ${JSON.stringify(drained.byBackend)}`);
    await new Promise((r) => setTimeout(r, 600));

    // Remove b3 (it carries none of the long-lived connections).
    t.equal((await daemon.api('DELETE', '/farms/web/backends/2')).status, 200);
    await new Promise((r) => setTimeout(r, 600));
    const result = await hold.stop();
    t.equal(result.broken, 0, `no long-lived connection broke: ${JSON.stringify(result.errors)}`);
    t.ok((result.byBackend.b2 ?? 0) === onB2, 'the drained backend kept serving its connections');

    // Removing b2 concerns exactly its own flows.
    t.equal((await daemon.api('PUT', '/farms/web/backends/1/maintenance', { action: 'up' })).status, 200);
    t.ok(await daemon.until(() => farmReady(daemon, 'web'), 5000));
    const hold2 = lab.startHold(VIP, 80, 20);
    const ready2 = await hold2.ready();
    const onB2now = ready2.byBackend.b2 ?? 0;
    t.ok(onB2now > 0 && onB2now < 20, `b2 carries ${onB2now} of the 20`);
    t.equal((await daemon.api('DELETE', '/farms/web/backends/1')).status, 200);
    await new Promise((r) => setTimeout(r, 1500));
    const result2 = await hold2.stop();
    t.equal(result2.broken, onB2now, `only the ${onB2now} connections of the removed backend broke (${result2.broken})`);
    t.equal((await daemon.api('POST', '/farms/web/backends', { ip: lab.backends[1]!.ip })).status, 201);
    t.ok(await daemon.until(() => farmReady(daemon, 'web'), 5000));
  });

  await t.test('a second farm created and deleted breaks none of 20 long-lived connections', async (t) => {
    const hold = lab.startHold(VIP, 80, 20);
    const ready = await hold.ready();
    t.equal(ready.opened, 20, `20 connections open ${JSON.stringify(ready.byBackend)}`);
    await createDsrFarm(daemon, lab, 'other', OTHER_VIP, '8080');
    t.ok(await daemon.until(() => farmReady(daemon, 'other'), 5000), 'the second farm is applied');
    t.equal((await daemon.api('DELETE', '/farms/other')).status, 200);
    t.ok(await daemon.until(async () => !(await daemon.nft(['list', 'chains'])).includes('farm_2'), 5000), 'the second farm is gone');
    await new Promise((r) => setTimeout(r, 1000));
    const result = await hold.stop();
    t.equal(result.broken, 0, `no connection broke: ${JSON.stringify(result.errors)}`);
    t.ok(result.requests > 20 * 5, `traffic flowed all along (${result.requests} requests)`);
  });

  for (const signal of ['SIGTERM', 'SIGKILL'] as const) {
    await t.test(`restarting the daemon (${signal}) breaks none of 20 long-lived connections`, async (t) => {
      const hold = lab.startHold(VIP, 80, 20);
      t.equal((await hold.ready()).opened, 20);
      await daemon.stop(signal);
      t.match(await daemon.nft(['list', 'chains']), 'farm_1', 'the rules stay while nftfarm is down');
      await new Promise((r) => setTimeout(r, 500));
      await daemon.start();
      t.ok(await daemon.until(() => farmReady(daemon, 'web'), 10_000), 'the farm is applied again');
      await new Promise((r) => setTimeout(r, 1000));
      const result = await hold.stop();
      t.equal(result.broken, 0, `no connection broke: ${JSON.stringify(result.errors)}`);
      const fresh = await lab.httpMany(`http://${VIP}/`, 10);
      t.equal(fresh.ok, 10, 'new connections work after the restart');
    });
  }

  await t.test('after `nft flush ruleset` the farm works again within 10 s', async (t) => {
    await lab.execOk(lab.lb.ns, ['nft', 'flush', 'ruleset']);
    const started = Date.now();
    const repaired = await daemon.until(async () => (await lab.httpMany(`http://${VIP}/`, 1, { timeoutMs: 500 })).ok === 1, 10_000);
    t.ok(repaired, 'the VIP answers again');
    t.ok(Date.now() - started < 10_000, `repaired in ${Date.now() - started} ms`);
    t.match(daemon.logs(), 'drifted', 'the repair is logged');
    const result = await lab.httpMany(`http://${VIP}/`, 20);
    t.equal(result.ok, 20);
  });

  await t.test('rules flushed inside the table, or a proxy ARP entry removed, are repaired too', async (t) => {
    await lab.execOk(lab.lb.ns, ['nft', 'flush', 'table', 'netdev', 'nftfarm']);
    t.ok(await daemon.until(async () => (await lab.httpMany(`http://${VIP}/`, 1, { timeoutMs: 500 })).ok === 1, 10_000), 'flushed rules are back');
    await lab.execOk(lab.lb.ns, ['ip', 'neigh', 'del', 'proxy', VIP, 'dev', 'eth0']);
    await lab.exec(lab.client.ns, ['ip', 'neigh', 'flush', 'all']);
    t.ok(await daemon.until(async () => (await lab.exec(lab.lb.ns, ['ip', 'neigh', 'show', 'proxy'])).stdout.includes(VIP), 10_000), 'the proxy entry is back');
    t.equal((await lab.httpMany(`http://${VIP}/`, 10)).ok, 10, 'the client resolves the VIP and is served');
  });

  await t.test('a transaction the kernel refuses leaves the old ruleset in force and shows the error', async (t) => {
    // Someone removes an element nftfarm holds (b2's new-flow counter): nftfarm's next
    // change deletes it too, and the kernel refuses the whole transaction (no such element).
    const macs = await daemon.nft(['list', 'map', 'netdev', 'nftfarm', 'backend_macs']);
    // Elements list as "2 counter packets 5 bytes 300 : 02:00:0a:fa:00:16".
    const b2 = new RegExp(`(\\d+)(?: counter packets \\d+ bytes \\d+)? : ${lab.backends[1]!.mac}`).exec(macs)?.[1];
    t.ok(b2, `b2's mark in ${macs}`);
    await lab.execOk(lab.lb.ns, ['nft', 'delete', 'element', 'netdev', 'nftfarm', 'backend_new_flows', `{ ${b2} }`]);
    const before = await daemon.nft(['list', 'map', 'netdev', 'nftfarm', 'backend_macs']);
    t.equal((await daemon.api('DELETE', '/farms/web/backends/1')).status, 200, 'remove b2');
    const failed = await daemon.until(async () => (await daemon.api('GET', '/farms/web')).body.params.dataplane.state === 'failed', 5000);
    t.ok(failed, 'the farm shows the failure');
    const farm = (await daemon.api('GET', '/farms/web')).body.params.dataplane;
    t.match(farm.error, /No such file or directory|ENOENT/, `the farm status carries the kernel's refusal: ${farm.error}`);
    t.not(farm.applied_generation, farm.generation, 'the change is not applied');
    const system = (await daemon.api('GET', '/system/status')).body.params;
    t.match(system.last_error, /No such file or directory|ENOENT/, 'so does /system/status');
    t.ok(system.consecutive_failures >= 1);
    const counters = / counter packets \d+ bytes \d+/g;
    t.equal((await daemon.nft(['list', 'map', 'netdev', 'nftfarm', 'backend_macs'])).replace(counters, ''), before.replace(counters, ''), 'the kernel keeps the previous ruleset');
    const still = await lab.httpMany(`http://${VIP}/`, 20);
    t.equal(still.ok, 20, 'traffic is still served by the old ruleset');
    t.ok((still.byBackend.b2 ?? 0) > 0, 'including by the backend the refused change would have removed');
    t.match(daemon.logs(), 'reconcile pass failed');

    t.ok(await daemon.until(async () => (await daemon.api('GET', '/farms/web')).body.params.dataplane.state === 'applied', 35_000), 'the retry (a full pass, with backoff) applies the change');
    const after = await lab.httpMany(`http://${VIP}/`, 20);
    t.equal(after.ok, 20);
    t.same(Object.keys(after.byBackend), ['b1'], 'now the removed backend gets nothing');
    t.match(await daemon.nft(['list', 'set', 'netdev', 'nftfarm', 'backend_new_flows']), /elements = \{ \w+ counter packets \d+ bytes \d+ \}/, 'the full pass rewrote the counter set: b1 alone');
    t.equal((await daemon.api('POST', '/farms/web/backends', { ip: lab.backends[1]!.ip })).status, 201, 'b2 back');
  });
});
