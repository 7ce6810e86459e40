/**
 * The reconciler against a model of nftables (test/helpers/fake-kernel.ts): transactions all
 * or nothing, a refused one reported and retried with growing backoff as a full pass, drift
 * repaired, a change costing a transaction about that farm only, and changes that arrive
 * during a pass sharing the next one. A real SQLite store; no root, no kernel.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import t from 'tap';
import { pino } from 'pino';
import { openDatabase } from '../../src/store/db.js';
import { Store } from '../../src/store/store.js';
import { Reconciler } from '../../src/reconcile/reconciler.js';
import { isElementOperation, type Operation } from '../../src/dataplane/nft/transaction.js';
import { FakeKernel } from '../helpers/fake-kernel.js';
import { fakeHost, memorySysctl } from '../helpers/fake-host.js';

const log = pino({ level: process.env.TEST_LOG ?? 'silent' });

function setup(t: Tap.Test, farms = 3) {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'nftfarm-rec-'));
  const store = new Store(openDatabase(path.join(dir, 'nftfarm.db')));
  t.teardown(() => {
    store.close();
    fs.rmSync(dir, { recursive: true, force: true });
  });
  const ids: number[] = [];
  store.write((g) => {
    for (let i = 0; i < farms; i++) {
      const farm = store.insertFarm({ name: `f${i}`, vip: '10.250.0.100', vport: String(8000 + i), protocol: 'tcp', nattype: 'dsr', algorithm: 'weight', persistence: '', ttl: 60, running: true }, g);
      ids.push(farm.id);
      for (let b = 0; b < 3; b++) store.insertBackend(farm.id, { ip: `10.250.0.${21 + b}`, port: null, weight: 1 + b, priority: 1, maxConns: 0 }, g);
    }
  });
  const kernel = new FakeKernel();
  const { reconciler, passes } = startReconciler(t, store, kernel);
  return { store, kernel, reconciler, ids, passes };
}

/** A reconciler on this store and kernel (a second one on the same: a restart). */
function startReconciler(t: Tap.Test, store: Store, kernel: FakeKernel) {
  const passes: string[] = [];
  const reconciler = new Reconciler({
    store,
    net: fakeHost(),
    kernel,
    log,
    dryRun: false,
    sysctl: memorySysctl(),
    resyncIntervalMs: 40,
    backoffMs: 40,
    maxBackoffMs: 160,
    onPass: (p) => passes.push(`${p.kind}:${p.result}`),
  });
  t.teardown(() => reconciler.stop());
  return { reconciler, passes };
}

const until = async (check: () => boolean | Promise<boolean>, ms = 5000): Promise<boolean> => {
  const deadline = Date.now() + ms;
  while (Date.now() < deadline) {
    if (await check()) return true;
    await new Promise((r) => setTimeout(r, 5));
  }
  return false;
};

/** The element keys a transaction writes, by set. */
const elementKeys = (ops: Operation[]): string[] => ops.filter(isElementOperation).flatMap((o) => o.elements.map((e) => `${o.set.name} ${e.key}`));

t.test('a cold start loads everything; one change is one transaction about that farm only', async (t) => {
  const { store, kernel, reconciler, ids } = setup(t);
  await reconciler.start();
  t.equal(kernel.accepted.length, 1, 'one transaction for the whole store');
  t.ok(kernel.tables.has('netdev'));
  t.equal(reconciler.system().appliedGeneration, store.generation());
  for (const id of ids) t.equal(reconciler.farm(id)?.state, 'applied');

  const farm = store.getFarmById(ids[1]!)!;
  const reads = kernel.generationReads;
  store.write((g) => store.updateBackend(farm.id, 0, { weight: 9 }, g));
  await reconciler.idle();
  t.equal(kernel.accepted.length, 2, 'one more transaction');
  t.equal(kernel.generationReads, reads, 'no generation round trip: the commit reports the generation it made');
  const ops = kernel.accepted[1]!;
  t.ok(ops.every(isElementOperation), 'elements only: no chain, no set is rewritten');
  const base = 0x80000000 + farm.slot * 4096;
  const keys = elementKeys(ops);
  t.ok(keys.length > 0 && keys.every((k) => k.startsWith('selection ') && Number(k.split(' ')[1]) >= base && Number(k.split(' ')[1]) < base + 64), `only buckets of that farm's region: ${keys.length}`);
  t.equal(reconciler.farm(farm.id)?.appliedGeneration, store.getFarmById(farm.id)!.generation);
});

t.test('a refused transaction changes nothing, is reported, and is retried with growing backoff as a full pass', async (t) => {
  const { store, kernel, reconciler, ids, passes } = setup(t);
  await reconciler.start();
  const before = kernel.snapshot();
  kernel.failNext = 3;
  store.write((g) => store.updateBackend(ids[0]!, 1, { maintenance: 'cut' }, g));
  t.ok(await until(() => reconciler.farm(ids[0]!)?.state === 'failed'), 'the farm shows the failure');
  t.equal(kernel.snapshot(), before, 'the kernel holds what it held');
  t.match(reconciler.farm(ids[0]!)?.error, /injected/, "with the kernel's words");
  t.equal(reconciler.farm(ids[1]!)?.state, 'applied', 'farms the pass did not carry stay applied');
  t.match(reconciler.system().lastError, /injected/);

  t.ok(await until(() => reconciler.farm(ids[0]!)?.state === 'applied', 5000), 'applied once the kernel accepts again');
  const tries = kernel.attempts.slice(1);
  t.strictSame(tries.map((a) => a.ok), [false, false, false, true], 'three refusals, then success');
  const gaps = tries.slice(1).map((a, i) => a.at - tries[i]!.at);
  t.ok(gaps[0]! >= 35 && gaps[1]! >= 75 && gaps[2]! >= 155, `backoff doubles: ${gaps.join(', ')} ms`);
  t.ok(tries.slice(1).every((a) => a.operations.some((o) => o.op === 'replace-rules')), 'retries are full passes (every chain rewritten)');
  t.match(passes, ['full:applied', 'incremental:failed', 'full:failed', 'full:failed', 'full:applied']);
  t.equal(reconciler.system().consecutiveFailures, 0, 'the count resets');
  const cut = store.listBackends(ids[0]!)[1]!;
  const macs = kernel.tables.get('netdev')!.sets.get('backend_macs')!;
  t.notOk(macs.elements.has(String(cut.uid)), 'the change is in: the cut backend has no MAC entry');
});

t.test('drift: a chain someone removed is noticed and put back', async (t) => {
  const { kernel, reconciler, passes } = setup(t);
  await reconciler.start();
  const before = kernel.snapshot();
  kernel.tamper((tables) => {
    const netdev = tables.get('netdev')!;
    netdev.chains.get('farm_2')!.rules.pop();
  });
  t.ok(await until(() => kernel.snapshot() === before, 3000), 'repaired');
  t.ok(passes.filter((p) => p === 'full:applied').length >= 2, 'by a full pass');
  const after = passes.length;
  await new Promise((r) => setTimeout(r, 200));
  t.equal(passes.length, after, 'and then nothing more to do (our own commits are not drift)');
});

t.test('drift just before one of our commits: the generation it reports gives it away, and it is repaired', async (t) => {
  const { store, kernel, reconciler, ids, passes } = setup(t);
  await reconciler.start();
  const tidy = kernel.snapshot();
  kernel.tamper((tables) => {
    tables.get('netdev')!.chains.get('farm_2')!.rules.pop();
  });
  // The change commits right away: its generation is two past the one the reconciler knew.
  store.write((g) => store.updateBackend(ids[0]!, 0, { weight: 9 }, g));
  await reconciler.idle();
  store.write((g) => store.updateBackend(ids[0]!, 0, { weight: 1 }, g));
  t.ok(await until(() => kernel.snapshot() === tidy, 3000), 'repaired');
  t.ok(passes.includes('full:applied', 1), 'by a full pass');
});

t.test('changes that arrive during a pass share the next one; a deleted farm loses everything', async (t) => {
  const { store, kernel, reconciler, ids } = setup(t);
  await reconciler.start();
  kernel.delayMs = 30;
  for (let i = 0; i < 10; i++) store.write((g) => store.updateBackend(ids[i % 3]!, 0, { weight: 1 + (i % 9) }, g));
  await reconciler.idle();
  t.ok(kernel.accepted.length - 1 <= 3, `10 writes, ${kernel.accepted.length - 1} transactions`);
  t.equal(reconciler.system().appliedGeneration, store.generation());

  store.write(() => store.deleteFarm(ids[1]!));
  await reconciler.idle();
  const netdev = kernel.tables.get('netdev')!;
  t.notOk(netdev.chains.has('farm_2'), 'its chain is gone');
  t.notOk([...netdev.sets.get('ipv4_vip_ports')!.elements.keys()].some((k) => k.endsWith(' 8001')), 'its dispatch is gone');
  t.notOk([...netdev.sets.get('selection')!.elements.keys()].some((k) => Number(k) >= 0x80002000 && Number(k) < 0x80003000), 'its region is gone');
  t.equal(reconciler.farm(ids[1]!), undefined);

  for (const id of [ids[0]!, ids[2]!]) store.write(() => store.deleteFarm(id));
  await reconciler.idle();
  t.equal(kernel.tables.size, 0, 'no farm, no table');
});

t.test('a farm the kernel refuses is left out: every other change is applied, and the farm recovers once corrected', async (t) => {
  const { store, kernel, reconciler, ids } = setup(t);
  await reconciler.start();
  // The seam: this kernel refuses any transaction that writes the new farm's chain.
  let bad = '';
  kernel.refuse = (o) => (o.op === 'add-chain' && o.chain.name === bad ? 'Error: Could not process rule: Numerical result out of range (injected)' : null);
  const created = store.write((g) => {
    const farm = store.insertFarm({ name: 'refused', vip: '10.250.0.100', vport: '9000', protocol: 'tcp', nattype: 'dsr', algorithm: 'weight', persistence: '', ttl: 60, running: true }, g);
    store.insertBackend(farm.id, { ip: '10.250.0.21', port: null, weight: 1, priority: 1, maxConns: 0 }, g);
    store.updateBackend(ids[0]!, 0, { weight: 7 }, g);
    return farm;
  });
  bad = `farm_${created.slot}`;
  store.write((g) => store.updateBackend(ids[2]!, 0, { weight: 5 }, g));
  await reconciler.idle();
  t.equal(reconciler.farm(created.id)?.state, 'failed', 'the refused farm is failed');
  t.match(reconciler.farm(created.id)?.error, /refused this farm's rules.*injected/);
  t.notOk(kernel.tables.get('netdev')!.chains.has(bad), 'none of its objects are in');
  for (const id of ids) {
    t.equal(reconciler.farm(id)?.state, 'applied', `farm ${id} applied`);
    t.equal(reconciler.farm(id)?.appliedGeneration, store.getFarmById(id)!.generation, `farm ${id} at its latest generation`);
  }
  t.equal(reconciler.system().consecutiveFailures, 0, 'the pass itself succeeded');
  t.ok(kernel.checks > 0 && kernel.checks <= 8, `found by ${kernel.checks} checks`);

  // Unchanged, it is not tried again: other changes go through in one transaction each.
  const attempts = kernel.attempts.length;
  store.write((g) => store.updateBackend(ids[1]!, 0, { weight: 4 }, g));
  await reconciler.idle();
  t.equal(kernel.attempts.length, attempts + 1, 'one transaction, accepted');
  t.equal(reconciler.farm(created.id)?.state, 'failed');

  // Corrected (here: the kernel accepts it now), it is applied at its next change.
  kernel.refuse = null;
  store.write((g) => store.updateBackend(created.id, 0, { weight: 2 }, g));
  t.ok(await until(() => reconciler.farm(created.id)?.state === 'applied'), 'applied once its configuration changed');
  t.ok(kernel.tables.get('netdev')!.chains.has(bad));
});

t.test('a cold start with a farm the kernel refuses applies all the others', async (t) => {
  const { store, kernel, reconciler, ids } = setup(t, 4);
  const bad = `farm_${store.getFarmById(ids[2]!)!.slot}`;
  kernel.refuse = (o) => (o.op === 'add-chain' && o.chain.name === bad ? 'Error: comment too long (injected)' : null);
  await reconciler.start();
  t.equal(reconciler.farm(ids[2]!)?.state, 'failed');
  for (const id of [ids[0]!, ids[1]!, ids[3]!]) t.equal(reconciler.farm(id)?.state, 'applied');
  t.ok(kernel.tables.get('netdev')!.chains.has(`farm_${store.getFarmById(ids[0]!)!.slot}`));
});

t.test('a restart adopts a kernel that holds what was committed: nothing rewritten, only what changed meanwhile', async (t) => {
  const { store, kernel, reconciler, ids } = setup(t);
  await reconciler.start();
  await reconciler.stop();
  const held = kernel.snapshot();
  const commits = kernel.accepted.length;

  const second = startReconciler(t, store, kernel).reconciler;
  await second.start();
  t.equal(kernel.accepted.length, commits, 'no transaction at all');
  t.equal(kernel.snapshot(), held);
  for (const id of ids) t.equal(second.farm(id)?.state, 'applied', `farm ${id} applied`);
  await second.stop();

  // Changed while it was down: one transaction, about that farm's elements only.
  const farm = store.getFarmById(ids[1]!)!;
  store.write((g) => store.updateBackend(farm.id, 0, { weight: 8 }, g));
  const third = startReconciler(t, store, kernel).reconciler;
  await third.start();
  t.equal(kernel.accepted.length, commits + 1, 'one transaction');
  const ops = kernel.accepted.at(-1)!;
  t.ok(ops.every(isElementOperation), 'elements only');
  const base = 0x80000000 + farm.slot * 4096;
  t.ok(elementKeys(ops).every((k) => !k.startsWith('selection ') || (Number(k.split(' ')[1]) >= base && Number(k.split(' ')[1]) < base + 4096)), 'of that farm');
  await third.stop();

  // Someone else committed while it was down: its tables are rewritten (rules replaced).
  kernel.tamper(() => {});
  const fourth = startReconciler(t, store, kernel).reconciler;
  await fourth.start();
  t.ok(kernel.accepted.at(-1)!.some((o) => o.op === 'replace-rules'), 'a rewrite');
  t.equal(fourth.farm(ids[0]!)?.state, 'applied');
});

t.test('drift that the inventory cannot see (an edited element) is repaired', async (t) => {
  const { kernel, reconciler } = setup(t);
  await reconciler.start();
  const before = kernel.snapshot();
  kernel.tamper((tables) => {
    const selection = tables.get('netdev')!.sets.get('selection')!;
    const [key] = selection.elements.keys();
    selection.elements.set(key!, '12345');
  });
  t.not(kernel.snapshot(), before);
  t.ok(await until(() => kernel.snapshot() === before, 3000), 'repaired');
});

for (const pipelined of [true, false])
t.test(`a first load of many farms goes in chunks (${pipelined ? 'pipelined' : 'chunk by chunk'})`, async (t) => {
  const { store, kernel, reconciler, passes } = setup(t, 1200);
  kernel.pipelinedLoad = pipelined;
  await reconciler.start();
  t.equal(kernel.loadSessions, pipelined ? 1 : 0, pipelined ? 'one pipelined load' : 'no pipelined load offered');
  t.equal(kernel.accepted.length, 4, 'three chunks of at most 500 farms, then the dispatch');
  const isDispatch = (o: Operation) => isElementOperation(o) && /vip_(ports|port_ranges|any)$/.test(o.set.name);
  t.notOk(kernel.accepted.slice(0, 3).some((ops) => ops.some(isDispatch)), 'no dispatch element with the chunks: no farm is reachable before every farm is loaded');
  t.ok(kernel.accepted[3]!.length > 0 && kernel.accepted[3]!.every(isDispatch), 'the last load is the dispatch elements alone');
  t.equal(passes[0], 'full:applied', 'reported as applied');
  const firstPassAt = reconciler.system().firstPassAt;
  t.ok(firstPassAt !== null && firstPassAt === reconciler.system().lastPassAt, 'the status says when the first pass ended');
  const netdev = kernel.tables.get('netdev')!;
  t.equal([...netdev.chains.keys()].filter((c) => /^farm_\d+$/.test(c)).length, 1200, 'every farm chain');
  t.equal(netdev.sets.get('ipv4_vip_ports')!.elements.size, 1200, 'every dispatch entry');
  t.ok(store.listFarms().every((f) => reconciler.farm(f.id)?.state === 'applied'), 'every farm applied');

  // The record: every farm, and the generation it is exact for.
  const recorded = store.appliedState();
  t.equal(recorded.farms.length, 1200, 'every farm recorded');
  t.equal(recorded.generation, await kernel.generation(), "the kernel's generation after the load");
  await reconciler.stop();
  const commits = kernel.accepted.length;
  const second = startReconciler(t, store, kernel).reconciler;
  await second.start();
  t.equal(kernel.accepted.length, commits, 'a restart adopts it: no transaction');
  t.ok(store.listFarms().every((f) => second.farm(f.id)?.state === 'applied'), 'every farm applied after the restart');
  await second.stop();
});

t.test('a pipelined first load the kernel refuses a farm of: the tables are removed, loaded again chunk by chunk, the farm left out', async (t) => {
  const refusedName = 'f700';
  const results: { snapshot: string; states: (string | undefined)[]; attempts: FakeKernel['attempts'] }[] = [];
  for (const pipelined of [true, false]) {
    const { store, kernel, reconciler, ids } = setup(t, 1200);
    kernel.pipelinedLoad = pipelined;
    const refusedSlot = store.listFarms().find((f) => f.name === refusedName)!.slot;
    kernel.refuse = (o) => (o.op === 'add-chain' && o.chain.name === `farm_${refusedSlot}` ? 'Error: Could not process rule: Operation not supported (injected)' : null);
    await reconciler.start();
    t.equal(reconciler.system().lastError, null, `${pipelined ? 'pipelined' : 'chunk by chunk'}: the pass applied`);
    results.push({ snapshot: kernel.snapshot(), states: ids.map((id) => reconciler.farm(id)?.state), attempts: kernel.attempts });
    const refused = store.listFarms().find((f) => f.name === refusedName)!;
    t.equal(reconciler.farm(refused.id)?.state, 'failed', 'the refused farm failed');
    t.match(reconciler.farm(refused.id)?.error, /Operation not supported \(injected\)/);
    const netdev = kernel.tables.get('netdev')!;
    t.equal([...netdev.chains.keys()].filter((c) => /^farm_\d+$/.test(c)).length, 1199, 'every other farm chain');
    t.equal(netdev.sets.get('ipv4_vip_ports')!.elements.size, 1199, 'every other dispatch entry');
    t.equal(store.appliedState().farms.length, 1199, 'the record holds the farms applied');
    await reconciler.stop();
  }
  const [pipelined, serial] = results;
  t.ok(
    pipelined!.attempts.some((a) => a.ok && a.operations.length > 0 && a.operations.every((o) => o.op === 'delete-table')),
    'the pipelined load removed the tables it had made',
  );
  t.equal(pipelined!.snapshot, serial!.snapshot, 'the kernel holds what the chunk-by-chunk load alone gives');
  t.same(pipelined!.states, serial!.states, 'every farm in the same state');
});

t.test("two running farms with every port ('*') on one VIP: the lower id serves, the other is refused by claim, and the load does not fail", async (t) => {
  const { store, kernel, reconciler } = setup(t, 0);
  const [tcp, udp] = store.write((g) =>
    (['tcp', 'udp'] as const).map((protocol) => {
      const farm = store.insertFarm({ name: `every-${protocol}`, vip: '10.250.0.100', vport: '*', protocol, nattype: 'dsr', algorithm: 'weight', persistence: '', ttl: 60, running: true }, g);
      store.insertBackend(farm.id, { ip: '10.250.0.21', port: null, weight: 1, priority: 1, maxConns: 0 }, g);
      return farm;
    }),
  );
  await reconciler.start();
  t.equal(reconciler.system().lastError, null, 'the pass applied');
  t.equal(reconciler.farm(tcp!.id)?.state, 'applied');
  t.equal(reconciler.farm(udp!.id)?.state, 'failed');
  t.match(reconciler.farm(udp!.id)?.error, /already takes 10\.250\.0\.100 .* port \*/);
  t.equal(kernel.tables.get('netdev')?.sets.get('ipv4_vip_any')?.elements.size, 1, 'one key for the VIP');
});

t.test('two farms the kernel refuses only together: the later one is left out, every other farm is applied', async (t) => {
  const { store, kernel, reconciler, ids } = setup(t, 3);
  const [first, second, third] = ids.map((id) => store.getFarmById(id)!);
  // A collision the claims do not know: the kernel refuses any state holding both farms' chains.
  const chain = (slot: number) => `farm_${slot}`;
  kernel.refuseState = (tables) => {
    const chains = tables.get('netdev')?.chains;
    return chains?.has(chain(first!.slot)) && chains.has(chain(second!.slot)) ? 'Error: Could not process rule: File exists (injected: the two farms collide)' : null;
  };
  await reconciler.start();
  t.equal(reconciler.system().lastError, null, 'the pass applied');
  t.equal(reconciler.farm(first!.id)?.state, 'applied', 'the lower id keeps its rules');
  t.equal(reconciler.farm(third!.id)?.state, 'applied');
  t.equal(reconciler.farm(second!.id)?.state, 'failed');
  t.match(reconciler.farm(second!.id)?.error, /refused this farm's rules.*the two farms collide/);
  t.ok(kernel.tables.get('netdev')?.chains.has(chain(third!.slot)), "the third farm's chain is in");

  // Once the collision is gone (the farm corrected), the farm is applied.
  kernel.refuseState = null;
  store.write((g) => store.updateFarm(second!.id, { ttl: 61 }, g));
  t.ok(await until(() => reconciler.farm(second!.id)?.state === 'applied'), 'applied once the kernel takes it');
});
