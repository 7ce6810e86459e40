/**
 * Health checks end to end, through the HTTP API only: a real daemon in a lab of network
 * namespaces runs check_tcp and check_http against three DSR backends; a backend that fails
 * its check leaves new-flow selection and comes back when it passes again. Also priority
 * failover and maintenance drain/cut with long-lived connections.
 */
import t, { type Test } from 'tap';
import { createLab, LAB_VIP, type BackendProcess, type Lab } from '../../lab/lab.js';
import { createDsrFarm, farmReady, startLabDaemon, type LabDaemon } from '../../lab/daemon.js';

const VIP = LAB_VIP;
const INTERVAL_S = 1;
const FALL = 2;
const RISE = 2;
/** The issue's bound: interval x failures + 2 s. */
const DOWN_WITHIN_MS = INTERVAL_S * FALL * 1000 + 2000;

let lab: Lab;
let daemon: LabDaemon;
let servers: BackendProcess[];

t.before(async () => {
  lab = await createLab({ prefix: 'nfhc1', backends: 3 });
  await lab.configureDsrBackends(VIP);
  servers = await lab.startHttpBackends(80);
});
t.teardown(async () => lab?.destroy());

interface BackendView {
  id: number;
  status: string;
  status_reason?: string;
}

async function farmView(name: string): Promise<{ status: string; backends: BackendView[] }> {
  const res = await daemon.api('GET', `/farms/${name}`);
  return { status: res.body.params.status, backends: res.body.backends };
}

/** Polls every 100 ms; resolves with the elapsed time, or null on timeout. */
async function waitFor(check: () => Promise<boolean>, timeoutMs: number): Promise<number | null> {
  const started = Date.now();
  for (;;) {
    if (await check()) return Date.now() - started;
    if (Date.now() - started > timeoutMs) return null;
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** The daemon's health transitions and kernel transactions since `sinceMs`, for a failed timing assertion. */
function timeline(sinceMs: number): string {
  return daemon
    .logs()
    .split('\n')
    .filter((l) => l.includes('"component":"health"') || l.includes('nftables transaction') || l.includes('reconcile pass failed'))
    .map((l) => JSON.parse(l) as { time: number; msg: string; ms?: number })
    .filter((l) => l.time >= sinceMs)
    .map((l) => `+${l.time - sinceMs} ms ${l.msg}${l.ms === undefined ? '' : ` (${l.ms} ms)`}`)
    .join('\n');
}

/** The reconciler has applied the farm's latest change. */
async function applied(farm: string): Promise<boolean> {
  const { dataplane } = (await daemon.api('GET', `/farms/${farm}`)).body.params;
  return dataplane.state === 'applied' && dataplane.applied_generation === dataplane.generation;
}

/** Sets a backend's maintenance through the API and waits until the data plane has it. */
async function maintenance(t: Test, id: number, body: Record<string, unknown>): Promise<void> {
  t.equal((await daemon.api('PUT', `/farms/web/backends/${id}/maintenance`, body)).status, 200, `backend ${id}: ${JSON.stringify(body)}`);
  t.ok((await waitFor(() => applied('web'), 5000)) !== null, 'applied');
}

const backendIs = (farm: string, id: number, status: string) => async () => (await farmView(farm)).backends.find((b) => b.id === id)?.status === status;

async function restartServer(i: number): Promise<void> {
  servers[i] = await lab.startBackendServer(lab.backends[i]!, { httpPort: 80 });
}

async function useCheck(farm: string, name: string, body: Record<string, unknown>): Promise<void> {
  const created = await daemon.api('POST', '/monitoring/fg', { name, interval: INTERVAL_S, timeout: 1, fall: FALL, rise: RISE, ...body });
  if (created.status !== 200) throw new Error(`create check ${name}: ${JSON.stringify(created.body)}`);
  const current = (await daemon.api('GET', `/farms/${farm}`)).body.params.farmguardian;
  if (current) await daemon.api('DELETE', `/farms/${farm}/fg/${current}`);
  const linked = await daemon.api('POST', `/farms/${farm}/fg`, { name });
  if (linked.status !== 200) throw new Error(`link check ${name}: ${JSON.stringify(linked.body)}`);
  // Every backend gets its first result within one interval (the random start offset).
  await new Promise((r) => setTimeout(r, INTERVAL_S * 1000 + 500));
}

t.test('health checks take failed backends out and put them back', async (t) => {
  daemon = await startLabDaemon(t, lab);
  await createDsrFarm(daemon, lab, 'web', VIP, '80');
  if (!t.ok(await daemon.until(() => farmReady(daemon, 'web'), 10_000), 'the farm is up')) t.comment(daemon.logs());

  await t.test('a command that is not a check is refused with a 400', async (t) => {
    const res = await daemon.api('POST', '/monitoring/fg', { name: 'evil', command: 'check_tcp -H HOST -p PORT; rm -rf /' });
    t.equal(res.status, 400);
    t.equal(res.body.error, 'true');
    t.match(res.body.message, /The command 'check_tcp -H HOST -p PORT; rm -rf \/' is not valid: it contains ';', which is shell syntax/);
    t.equal((await daemon.api('GET', '/monitoring/fg/evil')).status, 404, 'nothing was stored');
  });

  await t.test('check_tcp: a stopped server is down within interval x fall + 2 s, and rejoins', async (t) => {
    await useCheck('web', 'tcp1s', { command: 'check_tcp -H HOST -p PORT -t 1' });
    const before = await lab.httpMany(`http://${VIP}/`, 60);
    t.equal(before.ok, 60);
    t.ok((before.byBackend.b2 ?? 0) > 0, `b2 takes flows before: ${JSON.stringify(before.byBackend)}`);

    await lab.stopProcess(servers[1]!.child);
    const failedAt = Date.now();
    const tookMs = await waitFor(async () => {
      const v = await farmView('web');
      return v.status === 'problem' && v.backends[1]?.status === 'down';
    }, 15_000);
    if (!t.ok(tookMs !== null && tookMs <= DOWN_WITHIN_MS, `b2 down and the farm in 'problem' after ${tookMs} ms (bound ${DOWN_WITHIN_MS} ms)`)) t.comment(timeline(failedAt));
    const view = await farmView('web');
    t.equal(view.status, 'problem');
    t.match(view.backends[1]?.status_reason, /^health check failing since \d{4}-\d\d-\d\dT[0-9:.]+Z: connection refused/);
    t.same(view.backends.map((b) => b.status), ['up', 'down', 'up']);

    const during = await lab.httpMany(`http://${VIP}/`, 100);
    t.equal(during.ok, 100, `100 fresh requests succeed: ${JSON.stringify(during.errors)}`);
    t.equal(during.byBackend.b2 ?? 0, 0);
    t.ok((during.byBackend.b1 ?? 0) > 0 && (during.byBackend.b3 ?? 0) > 0, `the other two share them: ${JSON.stringify(during.byBackend)}`);

    await restartServer(1);
    const upMs = await waitFor(async () => (await farmView('web')).status === 'up', 15_000);
    t.ok(upMs !== null, `b2 is up again after ${upMs} ms (rise ${RISE})`);
    const after = await lab.httpMany(`http://${VIP}/`, 60);
    t.equal(after.ok, 60);
    t.ok((after.byBackend.b2 ?? 0) > 0, `b2 takes flows again: ${JSON.stringify(after.byBackend)}`);

    const logs = daemon.logs();
    const down = logs.split('\n').find((l) => l.includes('"to":"down"') && l.includes('"backend":1'));
    t.ok(down, 'the transition to down is logged');
    t.match(JSON.parse(down ?? '{}'), { farm: 'web', backend: 1, from: 'up', to: 'down', reason: /connection refused/, latencyMs: Number }, down);
    t.match(logs, /"backend":1,.*"from":"down","to":"up"/, 'and the way back');
  });

  await t.test('check_http: a backend answering 500 is down, while it still serves', async (t) => {
    await useCheck('web', 'http1s', { command: 'check_http -I HOST -p PORT -u /health -e 200 -s ok -t 1' });
    await new Promise((r) => setTimeout(r, 1500));
    t.equal((await farmView('web')).status, 'up', 'all pass the HTTP check');

    await lab.setHealthStatus(servers[2]!, 500);
    const failedAt = Date.now();
    const tookMs = await waitFor(async () => {
      const v = await farmView('web');
      return v.status === 'problem' && v.backends[2]?.status === 'down';
    }, 15_000);
    if (!t.ok(tookMs !== null && tookMs <= DOWN_WITHIN_MS, `b3 down after ${tookMs} ms (bound ${DOWN_WITHIN_MS} ms)`)) t.comment(timeline(failedAt));
    t.match((await farmView('web')).backends[2]?.status_reason, /health check failing since .*answered 'HTTP\/1.1 500 Internal Server Error', expected '200'/);

    const during = await lab.httpMany(`http://${VIP}/`, 100);
    t.equal(during.ok, 100);
    t.equal(during.byBackend.b3 ?? 0, 0, `no new flow reaches b3 although it would answer: ${JSON.stringify(during.byBackend)}`);

    await lab.setHealthStatus(servers[2]!, 200);
    t.ok((await waitFor(async () => (await farmView('web')).status === 'up', 15_000)) !== null, 'b3 passes again and is up');
    const after = await lab.httpMany(`http://${VIP}/`, 60);
    t.equal(after.ok, 60);
    t.ok((after.byBackend.b3 ?? 0) > 0, `b3 takes flows again: ${JSON.stringify(after.byBackend)}`);
  });

  await t.test('a new connection on the ports of an old one pinned to a drained backend is balanced again', async (t) => {
    // One request from local port 40001, closed with a RST so the port is free at once (no TIME_WAIT).
    const script = `const s = require('net').connect({ host: '${VIP}', port: 80, localPort: 40001 }, () => s.write('GET / HTTP/1.1\\r\\nHost: vip\\r\\n\\r\\n'));
      let b = ''; s.on('data', (d) => { b += d; const i = b.indexOf('\\r\\n\\r\\n'); if (i >= 0 && b.endsWith('}')) { process.stdout.write(b.slice(i + 4)); s.resetAndDestroy(); } });
      s.on('error', (e) => { console.error(e.message); process.exit(1); }); setTimeout(() => process.exit(2), 3000).unref();`;
    const fromPort = async (): Promise<string> => {
      const r = await lab.execOk(lab.client.ns, ['env', '-u', 'NODE_OPTIONS', process.execPath, '-e', script]);
      return (JSON.parse(r.stdout) as { backend: string }).backend;
    };
    const first = await fromPort();
    const id = Number(first.slice(1)) - 1;
    await maintenance(t, id, { action: 'maintenance', mode: 'drain' });
    const second = await fromPort();
    t.not(second, first, `the SYN on the same ports goes to ${second}, not to drained ${first}`);
    await maintenance(t, id, { action: 'up' });
  });

  await t.test('maintenance wins over a passing check; cut ends 10 long-lived connections', async (t) => {
    // Only b1 takes new flows while the 10 connections open.
    for (const id of [1, 2]) await maintenance(t, id, { action: 'maintenance', mode: 'drain' });
    const hold = lab.startHold(VIP, 80, 10);
    const ready = await hold.ready();
    t.same(ready.byBackend, { b1: 10 }, '10 connections on b1');
    for (const id of [1, 2]) await maintenance(t, id, { action: 'up' });

    await maintenance(t, 0, { action: 'maintenance', mode: 'drain' });
    await new Promise((r) => setTimeout(r, 2500)); // several passing checks
    const view = await farmView('web');
    t.equal(view.backends[0]?.status, 'maintenance', 'a passing check does not put a drained backend back');
    t.equal(view.status, 'maintenance');
    const fresh = await lab.httpMany(`http://${VIP}/`, 40);
    t.equal(fresh.ok, 40);
    t.equal(fresh.byBackend.b1 ?? 0, 0, `new connections avoid the drained backend: ${JSON.stringify(fresh.byBackend)}`);

    await maintenance(t, 0, { action: 'maintenance', mode: 'cut' });
    await new Promise((r) => setTimeout(r, 3000));
    const result = await hold.stop();
    t.equal(result.broken, 10, `cut ended the 10 connections (${JSON.stringify(result.errors.slice(0, 3))})`);
    t.equal((await daemon.api('PUT', '/farms/web/backends/0/maintenance', { action: 'up' })).status, 200);
    t.ok((await waitFor(async () => (await farmView('web')).status === 'up', 5000)) !== null);
  });

  await t.test('drain: 10 long-lived connections survive while new connections avoid the backend', async (t) => {
    for (const id of [1, 2]) await maintenance(t, id, { action: 'maintenance', mode: 'drain' });
    const hold = lab.startHold(VIP, 80, 10);
    t.same((await hold.ready()).byBackend, { b1: 10 });
    for (const id of [1, 2]) await maintenance(t, id, { action: 'up' });
    await maintenance(t, 0, { action: 'maintenance', mode: 'drain' });
    await new Promise((r) => setTimeout(r, 2500));
    const fresh = await lab.httpMany(`http://${VIP}/`, 40);
    t.equal(fresh.byBackend.b1 ?? 0, 0, 'new connections avoid b1');
    const result = await hold.stop();
    t.equal(result.broken, 0, `the 10 drained connections all survived: ${JSON.stringify(result.errors)}`);
    t.same(result.byBackend, { b1: 10 }, `and kept talking to b1 (${result.requests} requests in all)`);
    t.equal((await daemon.api('PUT', '/farms/web/backends/0/maintenance', { action: 'up' })).status, 200);
    t.ok((await waitFor(async () => (await farmView('web')).status === 'up', 5000)) !== null);
  });

  await t.test('priority: the priority-2 backend takes flows only when both priority-1 backends are down', async (t) => {
    await useCheck('web', 'tcpprio', { command: 'check_tcp -H HOST -p PORT -t 1' });
    t.equal((await daemon.api('PUT', '/farms/web/backends/2', { priority: 2 })).status, 200);
    t.ok((await waitFor(() => farmReady(daemon, 'web'), 5000)) !== null);
    const normal = await lab.httpMany(`http://${VIP}/`, 60);
    t.equal(normal.ok, 60);
    t.equal(normal.byBackend.b3 ?? 0, 0, `standby b3 gets nothing: ${JSON.stringify(normal.byBackend)}`);

    await lab.stopProcess(servers[0]!.child);
    t.ok((await waitFor(backendIs('web', 0, 'down'), 15_000)) !== null, 'b1 down');
    const oneDown = await lab.httpMany(`http://${VIP}/`, 60);
    t.equal(oneDown.ok, 60);
    t.same(oneDown.byBackend, { b2: 60 }, 'b2 alone serves while one priority-1 backend is up');

    await lab.stopProcess(servers[1]!.child);
    t.ok((await waitFor(backendIs('web', 1, 'down'), 15_000)) !== null, 'b2 down');
    t.equal((await farmView('web')).status, 'problem');
    const failover = await lab.httpMany(`http://${VIP}/`, 60);
    t.equal(failover.ok, 60, `all served: ${JSON.stringify(failover.errors)}`);
    t.same(failover.byBackend, { b3: 60 }, 'the priority-2 backend takes all of them');

    await restartServer(0);
    t.ok((await waitFor(backendIs('web', 0, 'up'), 15_000)) !== null, 'b1 is back');
    const giveBack = await lab.httpMany(`http://${VIP}/`, 60);
    t.equal(giveBack.ok, 60);
    t.same(giveBack.byBackend, { b1: 60 }, 'priority 2 gives back to the recovered priority-1 backend');
    await restartServer(1);
    t.ok((await waitFor(async () => (await farmView('web')).status === 'up', 15_000)) !== null, 'all up again');
  });

  await t.test('with cut_conns a failed backend loses its established flows too', async (t) => {
    t.equal((await daemon.api('PUT', '/farms/web/backends/2', { priority: 1 })).status, 200);
    await useCheck('web', 'httpcut', { command: 'check_http -I HOST -p PORT -u /health -e 200 -t 1', cut_conns: 'true' });
    t.ok((await waitFor(() => farmReady(daemon, 'web'), 5000)) !== null);
    const hold = lab.startHold(VIP, 80, 30);
    const ready = await hold.ready();
    const onB3 = ready.byBackend.b3 ?? 0;
    t.ok(onB3 > 0, `b3 carries ${onB3} of 30 connections`);
    await lab.setHealthStatus(servers[2]!, 503);
    t.ok((await waitFor(backendIs('web', 2, 'down'), 15_000)) !== null, 'b3 down');
    await new Promise((r) => setTimeout(r, 3000));
    const result = await hold.stop();
    t.equal(result.broken, onB3, `exactly b3's ${onB3} connections were cut (${result.broken} broke)`);
    await lab.setHealthStatus(servers[2]!, 200);
    t.ok((await waitFor(async () => (await farmView('web')).status === 'up', 15_000)) !== null);
  });
});
