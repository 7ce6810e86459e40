/**
 * The kernel writer's routing, with fakes: which transactions go over netlink and which
 * through nft, and that a batch refused for its size falls back to nft while a batch the
 * kernel refuses does not. (The real writers are tested in test/netns.)
 */
import t from 'tap';
import { createKernelWriter, type ElementWriter } from '../../src/dataplane/kernel-writer.js';
import type { NftRunner } from '../../src/dataplane/nft/runner.js';
import type { ElementOperation, Operation } from '../../src/dataplane/nft/transaction.js';

const table = { family: 'netdev', name: 'nftfarm' };
const markMap = { kind: 'map' as const, name: 'selection', body: ['type mark : mark'], typeKey: 'mark : mark', dynamic: false };
const intervalSet = { kind: 'set' as const, name: 'ranges', body: ['type ipv4_addr', 'flags interval'], typeKey: 'ipv4_addr', dynamic: false };

const add = (n: number, set = markMap): ElementOperation => ({
  op: 'add-elements',
  table,
  set,
  elements: Array.from({ length: n }, (_, i) => ({ key: i + 1, value: i + 1 })),
});

function fakes(limit: number) {
  const scripts: string[] = [];
  const batches: number[] = [];
  const sets: string[][] = [];
  const nft: NftRunner = {
    apply: async (script) => void scripts.push(script),
    check: async () => undefined,
    run: async () => '',
  };
  const elements: ElementWriter = {
    maxBatchBytes: limit,
    encodable: (ops) => ops.every((o) => !o.set.body.includes('flags interval')),
    bytes: (o) => 100 + 10 * o.elements.length,
    async commit(ops) {
      const size = ops.reduce((sum, o) => sum + 100 + 10 * o.elements.length, 0);
      if (size > limit) throw Object.assign(new Error('too large: nothing sent'), { code: 'EMSGSIZE', applied: false });
      if (ops.some((o) => o.elements.some((e) => e.key === -1))) throw Object.assign(new Error('nftables refused operation 0: ENOENT'), { code: 'ENOENT', applied: false });
      batches.push(ops.reduce((sum, o) => sum + o.elements.length, 0));
      sets.push(ops.map((o) => o.set.name));
      return { generation: 7 };
    },
    generation: async () => 7,
    close: () => undefined,
  };
  return { scripts, batches, sets, writer: createKernelWriter(nft, elements) };
}

t.test('apply: element changes go over netlink; what does not fit or cannot be encoded goes through nft', async (t) => {
  const { scripts, batches, writer } = fakes(1000);
  t.same(await writer.apply([add(5)]), { via: 'netlink', generation: 7 }, 'a small change: one netlink batch, with the generation it made');
  t.same(batches, [5]);
  t.same(await writer.apply([add(500)]), { via: 'nft' }, 'a batch over the size limit: nft');
  t.equal(scripts.length, 1);
  t.match(scripts[0], /add element netdev nftfarm selection/);
  t.same(await writer.apply([add(2, intervalSet)]), { via: 'nft' }, 'an interval set: nft');
  t.same(await writer.apply([{ op: 'add-table', table } as Operation]), { via: 'nft' }, 'a structural change: nft');
  t.equal(scripts.length, 3);
});

t.test('apply: a batch the kernel refuses is an error, not a retry through nft', async (t) => {
  const { scripts, writer } = fakes(1000);
  const refused: ElementOperation = { ...add(1), elements: [{ key: -1, value: 1 }] };
  await t.rejects(writer.apply([refused]), { code: 'ENOENT' });
  t.equal(scripts.length, 0, 'nft was not asked');
});

t.test('load: elements in batches within the size limit, the last ones at the end', async (t) => {
  // 1,000 elements make a piece of 10,100 bytes here: two pieces fit a batch.
  const { scripts, batches, sets, writer } = fakes(4096 + 25_000);
  const dispatch = { ...markMap, name: 'dispatch' };
  const structure: Operation = { op: 'add-table', table } as Operation;
  await writer.load([add(2500, dispatch), structure, add(2500)], (o) => o.set.name === 'dispatch');
  t.equal(scripts.length, 1, 'the structure through nft');
  t.same(batches, [2000, 500, 2000, 500], 'every element over netlink, two pieces a batch');
  t.same(
    sets.map((names) => [...new Set(names)].join()),
    ['selection', 'selection', 'dispatch', 'dispatch'],
    'the dispatch elements last',
  );
});

/** A load writer whose commits wait until released, recording the order of everything sent. */
function pipelinedFakes() {
  const events: string[] = [];
  const waiting: { release: () => void; fail: (err: Error) => void }[] = [];
  let closed = 0;
  const nft: NftRunner = {
    apply: async (script) => void events.push(`nft: ${script.split('\n').find((l) => l.trim() !== '')?.trim()}`),
    check: async () => undefined,
    run: async () => '',
  };
  const loadWriter: ElementWriter = {
    maxBatchBytes: 1_000_000,
    encodable: (ops) => ops.every((o) => !o.set.body.includes('flags interval')),
    bytes: (o) => 100 + 10 * o.elements.length,
    commit(ops) {
      events.push(`queued ${ops.map((o) => `${o.set.name}:${o.elements.length}`).join()}`);
      return new Promise((resolve, reject) =>
        waiting.push({
          release: () => {
            events.push(`kernel ${ops.map((o) => o.set.name).join()}`);
            resolve({ generation: 9 });
          },
          fail: reject,
        }),
      );
    },
    writeChains(operations) {
      // As the netlink writer: plain chains only, else null (nft writes them).
      if (!operations.every((o) => o.op === 'add-chain' && o.chain.hook === undefined)) return null;
      events.push(`queued chains ${operations.map((o) => (o.op === 'add-chain' ? o.chain.name : o.op)).join()}`);
      return new Promise((resolve, reject) => waiting.push({ release: () => resolve(), fail: reject }));
    },
    generation: async () => 9,
    close: () => void closed++,
  };
  const elements: ElementWriter = { ...loadWriter, openLoadWriter: async () => loadWriter };
  /** Answers every batch queued so far, in order. */
  const kernelRuns = () => {
    for (const w of waiting.splice(0)) w.release();
  };
  return { events, waiting, kernelRuns, closed: () => closed, writer: createKernelWriter(nft, elements) };
}

const chain = (name: string): Operation => ({ op: 'add-chain', table, chain: { name, rules: ['accept'] } }) as Operation;

/** Lets the session's steps run (they follow promises and I/O callbacks). */
const settle = async () => {
  for (let i = 0; i < 5; i++) await new Promise((r) => setImmediate(r));
};

t.test('beginLoad: each write returns at once, before the kernel answers; nft waits for the batches before it', async (t) => {
  const { events, waiting, kernelRuns, closed, writer } = pipelinedFakes();
  const session = (await writer.beginLoad!())!;
  t.ok(session, 'a session, since the element writer has a load writer');
  await session.write([{ op: 'add-table', table } as Operation, add(3)]);
  await session.write([chain('farm_1'), add(2)]);
  await settle();
  t.same(events, ['nft: add table netdev nftfarm', 'queued selection:3', 'queued chains farm_1', 'queued selection:2'], "the tables through nft, their elements, then the next chunk's chains before its elements");
  t.equal(waiting.length, 3, 'the kernel has answered none of them: the writes did not wait');
  // Structure only nft can write (a hooked chain, say): it waits until the batches before it are in.
  const dispatch = { ...intervalSet, name: 'dispatch_ranges' };
  await session.write([add(1, dispatch)]);
  await settle();
  t.notOk(events.some((e) => e.startsWith('nft: add element')), 'nft did not run while batches were in flight');
  kernelRuns();
  await session.finish();
  t.same(events.slice(4), ['kernel selection', 'kernel selection', 'nft: add element netdev nftfarm dispatch_ranges { 1 : 1 }'], 'then nft');
  t.equal(closed(), 1, 'finish closes the load writer (its helper process)');
});

t.test('beginLoad: a failed batch fails the next write and finish, which still closes the load writer', async (t) => {
  const { waiting, closed, writer } = pipelinedFakes();
  const session = (await writer.beginLoad!())!;
  await session.write([add(3)]);
  await session.write([add(4)]);
  await settle();
  waiting[0]!.fail(Object.assign(new Error('nftables refused operation 0: ENOENT'), { code: 'ENOENT' }));
  waiting[1]!.release();
  await settle();
  await t.rejects(session.write([add(5)]), { code: 'ENOENT' }, 'nothing more is queued after a failure');
  await t.rejects(session.finish(), { code: 'ENOENT' });
  t.equal(closed(), 1);
});

t.test('beginLoad: null without a load writer (the chunk-by-chunk load() then writes)', async (t) => {
  const { writer } = fakes(1000);
  t.equal(await writer.beginLoad!(), null);
});

t.test('beginLoad: the helper process starts while nft writes the tables; one that does not start fails the writes after nft, and finish', async (t) => {
  const scripts: string[] = [];
  const nft: NftRunner = { apply: async (script) => void scripts.push(script), check: async () => undefined, run: async () => '' };
  let opened = 0;
  const elements: ElementWriter = {
    maxBatchBytes: 1000,
    encodable: () => true,
    bytes: () => 100,
    commit: async () => ({ generation: 1 }),
    generation: async () => 1,
    close: () => undefined,
    openLoadWriter: () => {
      opened++;
      return Promise.reject(Object.assign(new Error('the netlink helper process ended (1) before it was ready'), { code: 'ECONNRESET' }));
    },
  };
  const writer = createKernelWriter(nft, elements);
  const session = (await writer.beginLoad!())!;
  t.equal(opened, 1, 'the helper is started at once');
  await session.write([{ op: 'add-table', table } as Operation, add(3)]);
  await settle();
  t.equal(scripts.length, 1, 'nft wrote the tables (the caller removes them)');
  await t.rejects(session.write([add(1)]), /helper process ended/, 'the next write fails');
  await t.rejects(session.finish(), /helper process ended/, 'and finish');
});
