/**
 * The data plane never blinks: long-lived connections through a DSR farm survive changes to
 * other farms, daemon restarts (graceful and kill -9), and a kernel ruleset flushed behind
 * nftfarm's back is repaired. A farm the kernel refuses is left out; every other farm is applied.
 */
import t from 'tap';
import { createLab, LAB_VIP, type Lab } from '../../lab/lab.js';
import { createDsrFarm, farmReady, startLabDaemon, type LabDaemon } from '../../lab/daemon.js';
import { openDatabase } from '../../src/store/db.js';
import { Store } from '../../src/store/store.js';

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
      const adoptions = () => daemon.logs().split('adopted the rules the kernel holds').length - 1;
      const adoptedBefore = adoptions();
      await daemon.start();
      t.ok(await daemon.until(() => farmReady(daemon, 'web'), 10_000), 'the farm is applied again');
      t.equal(adoptions(), adoptedBefore + 1, 'by adopting what the kernel holds, not by loading it again');
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

  await t.test('an element someone deletes behind nftfarm\'s back is put back within 10 s', async (t) => {
    // The inventory (chains, sets, rule counts) cannot show this: the generation can.
    const newFlows = () => daemon.nft(['list', 'set', 'netdev', 'nftfarm', 'backend_new_flows']);
    const before = (await newFlows()).match(/elements = \{([^}]*)\}/)?.[1] ?? '';
    // Elements list as "0x00000001 counter packets 5 bytes 300".
    const marks = [...before.matchAll(/(0x[0-9a-f]+|\d+) counter/g)].map((m) => m[1]!);
    t.ok(marks.length >= 1, `counted backends: ${marks.join(', ')}`);
    const holds = async () => new RegExp(`(^|[\\s{,])${marks[0]} counter`).test(await newFlows());
    t.ok(await holds(), 'listed');
    await lab.execOk(lab.lb.ns, ['nft', 'delete', 'element', 'netdev', 'nftfarm', 'backend_new_flows', `{ ${marks[0]} }`]);
    t.notOk(await holds(), 'deleted');
    const started = Date.now();
    if (!t.ok(await daemon.until(holds, 12_000), 'the element is back')) t.comment(daemon.logs().slice(-5000));
    t.ok(Date.now() - started < 10_000, `repaired in ${Date.now() - started} ms`);
    t.equal((await lab.httpMany(`http://${VIP}/`, 20)).ok, 20);
  });

  await t.test('a farm the kernel refuses is left out: every other farm is applied and changes; corrected, it is applied', async (t) => {
    // The seam: a farm written to the database behind the API's back, with a persistence
    // timeout nft refuses ("value too large"); the API would refuse it (ttl <= 2,592,000).
    await lab.configureDsrBackends(OTHER_VIP);
    await daemon.stop('SIGTERM');
    const store = new Store(openDatabase(daemon.dbPath));
    store.write((g) => {
      const farm = store.insertFarm({ name: 'refused', vip: OTHER_VIP, vport: '80', protocol: 'tcp', nattype: 'dsr', algorithm: 'weight', persistence: 'srcip', ttl: 100_000_000, running: true }, g);
      store.insertBackend(farm.id, { ip: lab.backends[0]!.ip, port: null, weight: 1, priority: 1, maxConns: 0 }, g);
    });
    store.close();
    const hold = lab.startHold(VIP, 80, 10);
    t.equal((await hold.ready()).opened, 10);
    await daemon.start();
    const state = async (name: string) => (await daemon.api('GET', `/farms/${name}`)).body.params.dataplane;
    t.ok(await daemon.until(async () => (await state('refused'))?.state === 'failed', 10_000), 'the refused farm is failed');
    const refused = await state('refused');
    t.match(refused.error, /refused this farm's rules.*value too large/s, `with the kernel's words: ${refused.error}`);
    t.equal((await state('web')).state, 'applied', 'the other farm is applied');
    const system = (await daemon.api('GET', '/system/status')).body.params;
    t.equal(system.consecutive_failures, 0, 'the pass succeeded without it');
    t.match(daemon.logs(), 'refuses these farms');
    t.equal((await lab.httpMany(`http://${VIP}/`, 20)).ok, 20, 'the other farm serves');

    // Other farms still change: b2 leaves web, new flows go to b1 only.
    t.equal((await daemon.api('PUT', '/farms/web/backends/1/maintenance', { action: 'maintenance', mode: 'drain' })).status, 200);
    t.ok(await daemon.until(async () => (await state('web')).applied_generation === (await state('web')).generation, 5000), 'the change to web is applied');
    const drained = await lab.httpMany(`http://${VIP}/`, 20);
    t.same(Object.keys(drained.byBackend), ['b1'], `new flows avoid the drained b2: ${JSON.stringify(drained.byBackend)}`);
    t.equal((await daemon.api('PUT', '/farms/web/backends/1/maintenance', { action: 'up' })).status, 200);

    // Corrected through the API: applied, and it serves.
    t.equal((await daemon.api('PUT', '/farms/refused', { ttl: 60 })).status, 200);
    t.ok(await daemon.until(() => farmReady(daemon, 'refused'), 10_000), 'applied once corrected');
    t.ok(await daemon.until(async () => (await lab.httpMany(`http://${OTHER_VIP}/`, 1, { timeoutMs: 500 })).ok === 1, 5000), 'and it serves');
    const result = await hold.stop();
    t.equal(result.broken, 0, `no connection of web broke: ${JSON.stringify(result.errors)}`);
    t.equal((await daemon.api('DELETE', '/farms/refused')).status, 200);
  });
});
