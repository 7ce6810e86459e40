/**
 * The IPv6 version of flow-stability.test.ts (issue 13), in dsr, stateless_dnat and nat, in a
 * lab with IPv6 only on its links:
 * 60 long-lived TCP connections over 3 backends; a 4th backend added, a weight changed and a
 * backend drained break none of them; deleting a backend breaks exactly the connections it
 * carried. IPv6 flows are pinned under a hash of their tuple (FLOW_KEYS6 in farm-render.ts).
 * Then persistence: a client's new connections stay on one backend.
 */
import t from 'tap';
import { LAB_VIP6, createLab, type Lab } from '../../lab/lab.js';
import { farmReady, startLabDaemon, type LabDaemon } from '../../lab/daemon.js';

const VIP = LAB_VIP6;
const CONNECTIONS = 60;
let lab: Lab;

t.before(async () => {
  lab = await createLab({ prefix: 'nfv6flow', backends: 4, family: 'ipv6' });
  // The VIP on the backends' loopback (dsr); harmless in the other modes.
  await lab.configureDsrBackends(VIP);
  await lab.startHttpBackends(80);
});
t.teardown(async () => lab?.destroy());

/** dsr: backends answer clients directly. stateless_dnat: through the load balancer. */
async function routeReplies(viaLoadBalancer: boolean): Promise<void> {
  for (const b of lab.backends) {
    if (viaLoadBalancer) await lab.execOk(b.ns, ['ip', '-6', 'route', 'replace', `${lab.client.ip}/128`, 'via', lab.lb.ip]);
    else await lab.exec(b.ns, ['ip', '-6', 'route', 'del', `${lab.client.ip}/128`]);
  }
}

const applied = (daemon: LabDaemon) => daemon.until(() => farmReady(daemon, 'web'), 10_000);
const pause = (ms: number) => new Promise((r) => setTimeout(r, ms));

for (const mode of ['dsr', 'stateless_dnat', 'nat'] as const) {
  t.test(`${mode}: ${CONNECTIONS} long-lived connections through backend changes`, async (t) => {
    await routeReplies(mode === 'stateless_dnat');
    const daemon = await startLabDaemon(t, lab);
    const [b1, b2, b3, b4] = lab.backends;
    t.equal((await daemon.api('POST', '/farms', { farmname: 'web', profile: 'l4xnat', vip: VIP, vport: '80' })).status, 201);
    t.equal((await daemon.api('PUT', '/farms/web', { nattype: mode })).status, 200);
    for (const b of [b1!, b2!, b3!]) t.equal((await daemon.api('POST', '/farms/web/backends', { ip: b.ip })).status, 201);
    if (!t.ok(await applied(daemon), 'the farm is applied and up')) return t.comment(daemon.logs());

    await t.test('a 4th backend, a weight change and a drain break no connection', async (t) => {
      const hold = lab.startHold(VIP, 80, CONNECTIONS);
      const ready = await hold.ready();
      t.equal(ready.opened, CONNECTIONS, `${CONNECTIONS} connections open: ${JSON.stringify(ready.byBackend)}`);
      t.ok(['b1', 'b2', 'b3'].every((b) => (ready.byBackend[b] ?? 0) > 5), 'all three backends carry some');

      t.equal((await daemon.api('POST', '/farms/web/backends', { ip: b4!.ip })).status, 201);
      t.ok(await applied(daemon));
      const spread = await lab.httpMany(`http://[${VIP}]/`, 40);
      t.equal(spread.ok, 40);
      t.ok((spread.byBackend.b4 ?? 0) > 0, `new flows reach the 4th backend: ${JSON.stringify(spread.byBackend)}`);

      t.equal((await daemon.api('PUT', '/farms/web/backends/0', { weight: 3 })).status, 200);
      t.ok(await applied(daemon));

      t.equal((await daemon.api('PUT', '/farms/web/backends/1/maintenance', { action: 'maintenance', mode: 'drain' })).status, 200);
      t.ok(await daemon.until(async () => (await daemon.api('GET', '/farms/web')).body.params.status === 'maintenance', 5000));
      const drained = await lab.httpMany(`http://[${VIP}]/`, 40);
      t.equal(drained.ok, 40);
      t.equal(drained.byBackend.b2 ?? 0, 0, `no new flow goes to the drained backend: ${JSON.stringify(drained.byBackend)}`);

      await pause(1000);
      const result = await hold.stop();
      t.equal(result.broken, 0, `no connection broke: ${JSON.stringify(result.errors.slice(0, 3))}`);
      t.equal(result.byBackend.b2 ?? 0, ready.byBackend.b2 ?? 0, 'the drained backend kept serving its connections');
      t.ok(result.requests > CONNECTIONS * 3, `traffic flowed all along (${result.requests} requests)`);
      t.equal((await daemon.api('PUT', '/farms/web/backends/1/maintenance', { action: 'up' })).status, 200);
      t.ok(await applied(daemon));
    });

    await t.test('deleting a backend breaks exactly its own connections', async (t) => {
      const hold = lab.startHold(VIP, 80, CONNECTIONS);
      const ready = await hold.ready();
      t.equal(ready.opened, CONNECTIONS);
      const onB3 = ready.byBackend.b3 ?? 0;
      t.ok(onB3 > 0 && onB3 < CONNECTIONS, `b3 carries ${onB3} of ${CONNECTIONS}`);
      t.equal((await daemon.api('DELETE', '/farms/web/backends/2')).status, 200);
      t.ok(await applied(daemon));
      await pause(2000);
      const result = await hold.stop();
      t.equal(result.broken, onB3, `the ${onB3} connections of the deleted backend broke, and no other (${result.broken} broke)`);
    });

    await t.test('persistence by client address: every new connection of the client goes to one backend', async (t) => {
      t.equal((await daemon.api('PUT', '/farms/web', { persistence: 'ip', ttl: 60 })).status, 200);
      t.ok(await applied(daemon));
      const r = await lab.httpMany(`http://[${VIP}]/`, 20);
      t.equal(r.ok, 20);
      t.equal(Object.keys(r.byBackend).length, 1, `one backend for the client: ${JSON.stringify(r.byBackend)}`);
      const farm = (await daemon.api('GET', '/farms/web')).body.params;
      t.match(farm.sessions, [{ client: lab.client.ip, type: 'dynamic' }], 'the session names the IPv6 client');
      t.equal((await daemon.api('DELETE', '/farms/web/sessions')).status, 200, 'sessions can be flushed');
      t.equal((await daemon.api('PUT', '/farms/web', { persistence: '' })).status, 200);
    });
  });
}
