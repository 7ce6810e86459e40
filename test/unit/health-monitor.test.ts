// The health monitor on a fake clock with a scripted checker and a real SQLite store: which
// backends it checks, when a failing one is down (interval x fall), logging, and what the
// reconciler then makes of it (roles in the desired state).
import t, { type Test } from 'tap';
import { pino } from 'pino';
import { Writable } from 'node:stream';
import { openDatabase } from '../../src/store/db.js';
import { Store } from '../../src/store/store.js';
import { HealthMonitor } from '../../src/health/monitor.js';
import type { CheckTarget, CheckResult } from '../../src/health/checkers.js';
import { desiredState } from '../../src/reconcile/desired.js';
import { FakeClock } from '../helpers/fake-clock.js';
import { facts } from '../helpers/fixtures.js';

function setup(t: Test) {
  const store = new Store(openDatabase(':memory:'));
  t.teardown(() => store.close());
  const lines: Record<string, unknown>[] = [];
  const log = pino(
    { level: 'info' },
    new Writable({
      write(chunk, _enc, done) {
        lines.push(JSON.parse(String(chunk)));
        done();
      },
    }),
  );
  const clock = new FakeClock(Date.parse('2026-01-01T00:00:00Z'));
  const failing = new Set<string>();
  const calls: { ip: string; port: number | null; at: number; timeoutMs: number }[] = [];
  const checker = async (target: CheckTarget, timeoutMs: number): Promise<CheckResult> => {
    calls.push({ ip: target.ip, port: target.port, at: clock.now(), timeoutMs });
    await clock.sleep(5);
    return failing.has(target.ip) ? { ok: false, reason: 'connection refused', latencyMs: 5 } : { ok: true, reason: 'TCP connect', latencyMs: 5 };
  };
  let wakes = 0;
  const monitor = new HealthMonitor({ store, log, clock, checker, random: () => 0, onTransition: () => wakes++ });
  t.teardown(() => monitor.stop());
  const farm = store.write((g) => store.insertFarm({ name: 'web', vip: '10.250.0.100', vport: '80', protocol: 'tcp', nattype: 'dsr', algorithm: 'weight', persistence: '', ttl: 60, running: true }, g));
  const b = ['10.250.0.21', '10.250.0.22', '10.250.0.23'].map((ip, i) =>
    store.write((g) => store.insertBackend(farm.id, { ip, port: i === 0 ? 8080 : null, weight: 1, priority: 1, maxConns: 0 }, g)),
  );
  return { store, monitor, clock, failing, calls, lines, wakes: () => wakes, farm, b };
}

/** The monitor syncs a write's farms just after the write (off the writer's request). */
const settled = () => new Promise((resolve) => setImmediate(resolve));

t.test('only farms with a linked check, running, are checked, on each backend IP and port', async (t) => {
  const { store, monitor, clock, calls, farm, b } = setup(t);
  monitor.start();
  await clock.advance(10_000);
  t.equal(calls.length, 0, 'no check linked: nothing runs');
  store.write((g) => store.updateHealthCheck('check_tcp', { interval: 2, timeout: 1 }, g));
  store.write((g) => store.linkHealthCheck(farm.id, 'check_tcp', g));
  await settled();
  t.same(monitor.checked().sort(), b.map((x) => x.uid).sort());
  await clock.advance(10);
  t.same(
    calls.map((c) => `${c.ip}:${c.port}`),
    ['10.250.0.21:8080', '10.250.0.22:80', '10.250.0.23:80'],
    "the backend's port, or the farm's virtual port",
  );
  t.equal(calls[0]?.timeoutMs, 1000, "the check's timeout");
  await clock.advance(4000);
  t.equal(calls.length, 9, 'every 2 s');
  store.write((g) => store.updateFarm(farm.id, { running: false }, g));
  await settled();
  t.same(monitor.checked(), [], 'a stopped farm is not checked');
  await clock.advance(10_000);
  t.equal(calls.length, 9);
});

t.test('a failing backend is down after fall checks, with reason and time; up again after rise', async (t) => {
  const { store, monitor, clock, failing, lines, wakes, farm, b } = setup(t);
  store.write(() => store.insertHealthCheck('tcp', { description: '', command: 'check_tcp -H HOST -p PORT', interval: 1, timeout: 1, fall: 3, rise: 2, cutConns: false, log: false, backendAlias: false }));
  store.write((g) => store.linkHealthCheck(farm.id, 'tcp', g));
  await settled();
  monitor.start();
  await clock.advance(100);
  t.same(b.map((x) => monitor.healthOf(x.uid)?.up), [true, true, true], 'all up after the first check');
  t.equal(wakes(), 3, 'each first verdict wakes the reconciler');

  const failedAt = clock.now();
  failing.add('10.250.0.22');
  let downAfter = 0;
  for (let ms = 0; ms < 10_000 && monitor.healthOf(b[1]!.uid)?.up !== false; ms += 50) {
    await clock.advance(50);
    downAfter = clock.now() - failedAt;
  }
  t.ok(downAfter > 2000 && downAfter <= 3000 + 100, `down ${downAfter} ms after the failure: 3 failed checks 1 s apart`);
  const health = monitor.healthOf(b[1]!.uid)!;
  t.match(health, { up: false, reason: 'connection refused', latencyMs: 5 });
  t.ok(Date.parse(health.since) > failedAt && Date.parse(health.since) <= failedAt + downAfter, `since ${health.since}: the third failed check`);
  t.equal(wakes(), 4);
  const logged = lines.find((l) => l.to === 'down');
  t.match(logged, { level: 40, farm: 'web', backend: 1, ip: '10.250.0.22', from: 'up', to: 'down', reason: 'connection refused', latencyMs: 5, check: 'tcp' });

  failing.delete('10.250.0.22');
  await clock.advance(1000);
  t.equal(monitor.healthOf(b[1]!.uid)?.up, false, 'one success of two');
  await clock.advance(1000);
  t.equal(monitor.healthOf(b[1]!.uid)?.up, true, 'up after two');
  t.match(lines.find((l) => l.from === 'down'), { to: 'up', backend: 1 });
});

t.test('what the reconciler makes of it: draining, or excluded with cut_conns; maintenance wins; priority falls back', async (t) => {
  const { store, monitor, clock, failing, farm, b } = setup(t);
  store.write(() => store.insertHealthCheck('tcp', { description: '', command: 'check_tcp -H HOST -p PORT', interval: 1, timeout: 1, fall: 1, rise: 1, cutConns: false, log: false, backendAlias: false }));
  store.write((g) => store.linkHealthCheck(farm.id, 'tcp', g));
  store.write((g) => store.updateBackend(farm.id, 2, { priority: 2 }, g));
  await settled();
  monitor.start();
  await clock.advance(100);
  const roles = () => desiredState(store.snapshot(), facts({ healthOf: (uid) => monitor.healthOf(uid) })).farms[0]!.backends.map((x) => x.role);
  t.same(roles(), ['serving', 'serving', 'standby']);

  failing.add('10.250.0.21');
  await clock.advance(1000);
  t.same(roles(), ['draining', 'serving', 'standby'], 'down without cut_conns: draining');
  const down = desiredState(store.snapshot(), facts({ healthOf: (uid) => monitor.healthOf(uid) })).farms[0]!.backends[0]!;
  t.match(down.reason, /^health check failing since 2026-01-01T00:00:01.*: connection refused$/);
  t.equal(down.checkFailing, true);

  failing.add('10.250.0.22');
  await clock.advance(1000);
  t.same(roles(), ['draining', 'draining', 'serving'], 'both priority-1 backends down: priority 2 serves');

  store.write((g) => store.updateHealthCheck('tcp', { cutConns: true }, g));
  await settled();
  t.same(roles(), ['excluded', 'excluded', 'serving'], 'with cut_conns: excluded (their flows are cut)');

  failing.clear();
  store.write((g) => store.updateBackend(farm.id, 0, { maintenance: 'drain' }, g));
  await settled();
  await clock.advance(1000);
  t.same(roles(), ['draining', 'serving', 'standby'], 'a passing check does not undo maintenance; priority 1 is back');

  store.write((g) => store.unlinkHealthCheck(farm.id, g));
  await settled();
  failing.add('10.250.0.22');
  await clock.advance(2000);
  t.same(roles(), ['draining', 'serving', 'standby'], 'without a linked check, health is not consulted');
  t.equal(b.length, 3);
});
