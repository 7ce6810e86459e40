/**
 * The memory reclaim's windows of V8 memory saver mode (src/memory-reclaim.ts), with injected
 * memory figures and flag setter. What a window gives back is measured by `npm run bench` (a
 * real V8 inside tap returned its pooled pages with or without a window: no test of it here
 * could fail).
 */
import t from 'tap';
import { startMemoryReclaim } from '../../src/memory-reclaim.js';

const MB = 2 ** 20;
const until = async (check: () => boolean, ms = 5000) => {
  const deadline = Date.now() + ms;
  while (!check() && Date.now() < deadline) await new Promise((r) => setTimeout(r, 5));
  return check();
};

t.test('a window turns memory saver mode on, then off; a second call inside it opens none', async (t) => {
  const flags: string[] = [];
  const reclaim = startMemoryReclaim({ windowMs: 30, checkEveryMs: 60_000, residentBytes: () => 300 * MB, heapBytes: () => 100 * MB, setFlags: (f) => flags.push(f) });
  t.teardown(() => reclaim.stop());
  reclaim.whenQuiet('test');
  reclaim.whenQuiet('again');
  t.same(flags, ['--memory-saver-mode'], 'no write yet: open at once');
  t.ok(await until(() => flags.length === 2), 'closed after the window');
  t.same(flags, ['--memory-saver-mode', '--no-memory-saver-mode']);
});

t.test('the periodic check opens a window when memory outside the heap grew by more than the slack, once', async (t) => {
  const flags: string[] = [];
  let resident = 200 * MB;
  const reclaim = startMemoryReclaim({ windowMs: 20, checkEveryMs: 10, slackBytes: 64 * MB, residentBytes: () => resident, heapBytes: () => 100 * MB, setFlags: (f) => flags.push(f) });
  t.teardown(() => reclaim.stop());
  await new Promise((r) => setTimeout(r, 60));
  t.same(flags, [], 'no growth: no window');
  resident = 300 * MB;
  t.ok(await until(() => flags.length === 2), 'grown by 100 MB: a window, closed again');
  // The window released nothing: that becomes the new baseline, and no window follows.
  await new Promise((r) => setTimeout(r, 80));
  t.same(flags, ['--memory-saver-mode', '--no-memory-saver-mode']);
});

t.test('stop ends an open window', async (t) => {
  const flags: string[] = [];
  const reclaim = startMemoryReclaim({ windowMs: 60_000, residentBytes: () => 0, heapBytes: () => 0, setFlags: (f) => flags.push(f) });
  reclaim.whenQuiet('test');
  reclaim.stop();
  t.same(flags, ['--memory-saver-mode', '--no-memory-saver-mode']);
});

t.test('a window waits for writes to pause, a write ends it, and it opens again at the next pause', async (t) => {
  const flags: string[] = [];
  const reclaim = startMemoryReclaim({ windowMs: 200, quietMs: 40, checkEveryMs: 60_000, residentBytes: () => 0, heapBytes: () => 0, setFlags: (f) => flags.push(f) });
  t.teardown(() => reclaim.stop());
  reclaim.write();
  reclaim.whenQuiet('test');
  t.same(flags, [], 'a write just now: not yet');
  // Writes every 10 ms for 100 ms keep it closed.
  for (let i = 0; i < 10; i++) {
    await new Promise((r) => setTimeout(r, 10));
    reclaim.write();
  }
  t.same(flags, [], 'still closed while writes go on');
  t.ok(await until(() => flags.length === 1), 'opens once they pause');
  reclaim.write();
  t.same(flags, ['--memory-saver-mode', '--no-memory-saver-mode'], 'a write ends it at once');
  t.ok(await until(() => flags.length === 3), 'and it opens again after the next pause');
  t.ok(await until(() => flags.length === 4, 2000), 'then runs its course');
  t.same(flags, ['--memory-saver-mode', '--no-memory-saver-mode', '--memory-saver-mode', '--no-memory-saver-mode']);
});
