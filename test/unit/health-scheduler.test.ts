// The health check scheduler's timing (one timer, random start, no overlap, concurrency cap)
// and the up/down hysteresis, on a fake clock.
import t from 'tap';
import { Scheduler } from '../../src/health/scheduler.js';
import { HealthTracker } from '../../src/health/hysteresis.js';
import { FakeClock } from '../helpers/fake-clock.js';

t.test('a job first runs at its random offset, then once per interval', async (t) => {
  const clock = new FakeClock();
  const s = new Scheduler({ clock, random: () => 0.25 });
  const runs: number[] = [];
  s.add('a', 1000, async () => void runs.push(clock.now()));
  await clock.advance(4000);
  t.same(runs, [250, 1250, 2250, 3250]);
  s.stop();
});

t.test('random offsets spread the first runs over the interval', async (t) => {
  const clock = new FakeClock();
  let i = 0;
  const offsets = [0, 0.1, 0.5, 0.9];
  const s = new Scheduler({ clock, random: () => offsets[i++ % offsets.length]! });
  const first = new Map<string, number>();
  for (const key of ['a', 'b', 'c', 'd']) s.add(key, 2000, async () => void (first.has(key) || first.set(key, clock.now())));
  await clock.advance(2000);
  t.same(Object.fromEntries(first), { a: 0, b: 200, c: 1000, d: 1800 });
  s.stop();
});

t.test('hundreds of jobs need one timer', async (t) => {
  const clock = new FakeClock();
  let k = 0;
  // Offsets 1, 3, 5 ... 999 ms: spread over the interval, none at 0 (which would run a 6th time).
  const s = new Scheduler({ clock, maxConcurrent: 1000, random: () => ((k++ % 500) + 0.5) / 500 });
  let runs = 0;
  let maxPending = 0;
  for (let i = 0; i < 500; i++) s.add(`b${i}`, 1000, async () => void runs++);
  maxPending = clock.pending();
  for (let step = 0; step < 100; step++) {
    await clock.advance(50);
    maxPending = Math.max(maxPending, clock.pending());
  }
  t.equal(maxPending, 1, 'never more than one armed timer');
  // 5 s: every job ran 5 times (its first run within the first second).
  t.equal(runs, 2500, `${runs} runs`);
  s.stop();
  t.equal(clock.pending(), 0, 'stop clears the timer');
});

t.test('a job never overlaps itself: a slow run delays the next one', async (t) => {
  const clock = new FakeClock();
  const s = new Scheduler({ clock, random: () => 0 });
  const starts: number[] = [];
  let running = 0;
  let maxRunning = 0;
  const durations = [2500, 200, 200, 3100];
  s.add('slow', 1000, async () => {
    starts.push(clock.now());
    running++;
    maxRunning = Math.max(maxRunning, running);
    await clock.sleep(durations[starts.length - 1] ?? 100);
    running--;
  });
  await clock.advance(9000);
  t.equal(maxRunning, 1);
  // 0 (takes 2.5 s) -> 2500 (0.2 s) -> 3500 -> 4500 (3.1 s) -> 7600 -> 8600
  t.same(starts, [0, 2500, 3500, 4500, 7600, 8600]);
  s.stop();
});

t.test('at most maxConcurrent jobs run at once; the others wait their turn', async (t) => {
  const clock = new FakeClock();
  const s = new Scheduler({ clock, random: () => 0, maxConcurrent: 3 });
  let running = 0;
  let maxRunning = 0;
  const done: string[] = [];
  for (let i = 0; i < 10; i++) {
    s.add(`j${i}`, 10_000, async () => {
      running++;
      maxRunning = Math.max(maxRunning, running);
      await clock.sleep(100);
      running--;
      done.push(`j${i}@${clock.now()}`);
    });
  }
  await clock.advance(1000);
  t.equal(maxRunning, 3);
  t.equal(done.length, 10, 'all ran');
  t.same(done.slice(0, 3), ['j0@100', 'j1@100', 'j2@100']);
  t.equal(done[9], 'j9@400', 'the last waited for three rounds');
  s.stop();
});

t.test('a removed job stops; a replaced one runs with its new interval', async (t) => {
  const clock = new FakeClock();
  const s = new Scheduler({ clock, random: () => 0 });
  const runs: string[] = [];
  s.add('a', 1000, async () => void runs.push(`a@${clock.now()}`));
  s.add('b', 1000, async () => void runs.push(`b@${clock.now()}`));
  await clock.advance(1500);
  s.remove('a');
  s.add('b', 3000, async () => void runs.push(`b2@${clock.now()}`));
  await clock.advance(5000);
  t.same(runs, ['a@0', 'b@0', 'a@1000', 'b@1000', 'b2@1500', 'b2@4500']);
  t.same(s.keys(), ['b']);
  s.stop();
});

t.test('replacing a running job does not overlap it: the new settings apply after it finishes', async (t) => {
  const clock = new FakeClock();
  const s = new Scheduler({ clock, random: () => 0 });
  const starts: string[] = [];
  let running = 0;
  let maxRunning = 0;
  const job = (name: string) => async () => {
    starts.push(`${name}@${clock.now()}`);
    running++;
    maxRunning = Math.max(maxRunning, running);
    await clock.sleep(1500);
    running--;
  };
  s.add('k', 1000, job('old'));
  await clock.advance(500);
  s.add('k', 3000, job('new'));
  await clock.advance(6500);
  t.equal(maxRunning, 1);
  t.same(starts, ['old@0', 'new@3000', 'new@6000']);
  s.stop();
});

t.test('a job that throws keeps its schedule', async (t) => {
  const clock = new FakeClock();
  const s = new Scheduler({ clock, random: () => 0 });
  let runs = 0;
  s.add('x', 1000, async () => {
    runs++;
    throw new Error('boom');
  });
  await clock.advance(2500);
  t.equal(runs, 3);
  s.stop();
});

t.test('hysteresis: the first result decides; then fall failures take it down, rise successes bring it back', async (t) => {
  const h = new HealthTracker(3, 2);
  t.equal(h.state, 'unknown');
  t.match(h.record(true, 'ok', 1, 0), { from: 'unknown', to: 'up' });
  t.equal(h.record(false, 'refused', 1, 1000), null, '1 failure of 3');
  t.equal(h.record(false, 'refused', 1, 2000), null, '2 failures of 3');
  t.match(h.record(false, 'refused', 2.5, 3000), { from: 'up', to: 'down', reason: 'refused', latencyMs: 2.5, at: 3000 });
  t.equal(h.since, 3000);
  t.equal(h.record(true, 'ok', 1, 4000), null, '1 success of 2');
  t.match(h.record(true, 'ok', 1, 5000), { from: 'down', to: 'up' });

  const fresh = new HealthTracker(3, 2);
  t.match(fresh.record(false, 'timeout', 5000, 0), { from: 'unknown', to: 'down' }, 'a dead backend is down after its first check');
});

t.test('hysteresis: a flapping backend does not flap', async (t) => {
  const h = new HealthTracker(2, 2);
  h.record(true, 'ok', 1, 0);
  let transitions = 0;
  for (let i = 1; i <= 20; i++) if (h.record(i % 2 === 0, i % 2 === 0 ? 'ok' : 'fail', 1, i * 1000)) transitions++;
  t.equal(transitions, 0, 'alternating results change nothing');
  t.equal(h.state, 'up');
  t.equal(h.record(false, 'fail', 1, 21_000), null);
  t.match(h.record(false, 'fail', 1, 22_000), { to: 'down' }, 'two failures in a row do');
});
