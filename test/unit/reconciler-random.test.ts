/**
 * Random writes against a running reconciler (fake kernel, real SQLite store), with random
 * timing between them: some writes land in one pass, some while a pass is committing, some
 * after it. At the end the kernel must hold exactly what a full load of the same store makes
 * in an empty kernel. The fuzz e2e test checks the same with the real daemon and nft; this
 * one replays in a second and names the seed. NFTFARM_RANDOM_SEED replays one run.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import t from 'tap';
import { pino } from 'pino';
import { openDatabase } from '../../src/store/db.js';
import { Store } from '../../src/store/store.js';
import { Reconciler } from '../../src/reconcile/reconciler.js';
import { ALGORITHMS, NAT_TYPES, PERSISTENCE_MODES, PROTOCOLS, type Farm } from '../../src/model/farm.js';
import { FakeKernel } from '../helpers/fake-kernel.js';
import { fakeHost, memorySysctl } from '../helpers/fake-host.js';

const log = pino({ level: process.env.TEST_LOG ?? 'silent' });
const BACKEND_IPS = Array.from({ length: 8 }, (_, i) => `10.250.0.${21 + i}`);
const VIPS = ['10.250.0.100', '10.250.0.101', '10.250.0.102'];
const VPORTS = ['80', '443', '8080', '80,443', '9000:9005', '*'];

/** mulberry32: a small seeded generator, so that a failing run can be replayed. */
function random(seed: number) {
  let a = seed >>> 0;
  const next = () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let x = Math.imul(a ^ (a >>> 15), 1 | a);
    x = (x + Math.imul(x ^ (x >>> 7), 61 | x)) ^ x;
    return ((x ^ (x >>> 14)) >>> 0) / 4294967296;
  };
  const int = (n: number) => Math.floor(next() * n);
  const pick = <T>(list: readonly T[]): T => list[int(list.length)]!;
  return { next, int, pick };
}

function reconcilerOn(t: Tap.Test, store: Store, kernel: FakeKernel) {
  const reconciler = new Reconciler({ store, net: fakeHost(), kernel, log, dryRun: false, sysctl: memorySysctl(), resyncIntervalMs: 60_000, backoffMs: 5, maxBackoffMs: 20 });
  t.teardown(() => reconciler.stop());
  return reconciler;
}

type Rng = ReturnType<typeof random>;

/** One random write; returns what it did, for the failure message. */
function randomWrite(store: Store, rng: Rng): string {
  const farms = store.listFarms();
  const farm: Farm | undefined = farms.length > 0 ? rng.pick(farms) : undefined;
  const kind = !farm || (farms.length < 12 && rng.next() < 0.15) ? 'add farm' : rng.pick(['change farm', 'change farm', 'delete farm', 'add backend', 'add backend', 'change backend', 'delete backend']);
  return store.write((g) => {
    switch (kind) {
      case 'add farm': {
        const name = `f${store.generation()}`;
        const f = store.insertFarm(
          { name, vip: rng.pick(VIPS), vport: rng.pick(VPORTS), protocol: rng.pick(PROTOCOLS), nattype: rng.pick(NAT_TYPES), algorithm: rng.pick(ALGORITHMS), persistence: rng.pick(PERSISTENCE_MODES), ttl: 1 + rng.int(120), running: rng.next() < 0.85 },
          g,
        );
        for (let i = rng.int(4); i > 0; i--) store.insertBackend(f.id, { ip: rng.pick(BACKEND_IPS), port: rng.next() < 0.5 ? null : 8000 + rng.int(3), weight: 1 + rng.int(5), priority: 1 + rng.int(2), maxConns: 0 }, g);
        return `${kind} ${name}`;
      }
      case 'change farm': {
        const field = rng.pick(['vip', 'vport', 'protocol', 'nattype', 'algorithm', 'persistence', 'ttl', 'running'] as const);
        const value = { vip: rng.pick(VIPS), vport: rng.pick(VPORTS), protocol: rng.pick(PROTOCOLS), nattype: rng.pick(NAT_TYPES), algorithm: rng.pick(ALGORITHMS), persistence: rng.pick(PERSISTENCE_MODES), ttl: 1 + rng.int(120), running: rng.next() < 0.7 }[field];
        store.updateFarm(farm!.id, { [field]: value }, g);
        return `${kind} ${farm!.name} ${field}=${value}`;
      }
      case 'delete farm':
        store.deleteFarm(farm!.id);
        return `${kind} ${farm!.name}`;
      case 'add backend':
        store.insertBackend(farm!.id, { ip: rng.pick(BACKEND_IPS), port: rng.next() < 0.5 ? null : 8000 + rng.int(3), weight: 1 + rng.int(5), priority: 1 + rng.int(2), maxConns: 0 }, g);
        return `${kind} to ${farm!.name}`;
      default: {
        const backends = store.listBackends(farm!.id);
        if (backends.length === 0) {
          store.touchFarm(farm!.id, g);
          return `touch ${farm!.name}`;
        }
        const b = rng.pick(backends);
        if (kind === 'delete backend') store.deleteBackend(farm!.id, b.id, g);
        else store.updateBackend(farm!.id, b.id, rng.pick([{ weight: 1 + rng.int(9) }, { priority: 1 + rng.int(3) }, { maintenance: rng.pick(['none', 'drain', 'cut'] as const) }, { port: rng.next() < 0.5 ? null : 8000 + rng.int(3) }]), g);
        return `${kind} ${b.id} of ${farm!.name}`;
      }
    }
  });
}

/** Lets the reconciler run for a random while: none (batched), a microtask, an I/O turn, or a whole pass. */
async function randomPause(reconciler: Reconciler, rng: Rng): Promise<void> {
  const x = rng.next();
  if (x < 0.3) return;
  if (x < 0.5) return void (await Promise.resolve());
  if (x < 0.75) return void (await new Promise((r) => setImmediate(r)));
  if (x < 0.9) return void (await new Promise((r) => setTimeout(r, rng.int(4))));
  await reconciler.idle();
}

/** What differs between two fake kernels, one line per chain, set or element. */
function differences(live: FakeKernel, reference: FakeKernel): string[] {
  const lines = (k: FakeKernel) => {
    const out = new Set<string>();
    for (const [table, t] of k.tables) {
      for (const [name, c] of t.chains) out.add(`${table} chain ${name} (${c.hook ?? '-'}): ${c.rules.join(' ; ')}`);
      for (const [name, set] of t.sets) {
        out.add(`${table} set ${name} ${set.body.join(' ')}`);
        for (const [key, value] of set.elements) out.add(`${table} ${name}[${key}] = ${value}`);
      }
    }
    return out;
  };
  const a = lines(live);
  const b = lines(reference);
  return [...[...a].filter((l) => !b.has(l)).map((l) => `live only: ${l}`), ...[...b].filter((l) => !a.has(l)).map((l) => `full load only: ${l}`)];
}

const SEEDS = process.env.NFTFARM_RANDOM_SEED ? [Number(process.env.NFTFARM_RANDOM_SEED)] : Array.from({ length: Number(process.env.NFTFARM_RANDOM_RUNS ?? 6) }, () => Math.floor(Math.random() * 1e9));

for (const seed of SEEDS) {
  t.test(`random writes, random timing: the kernel equals a full load of the store (seed ${seed})`, async (t) => {
    const rng = random(seed);
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'nftfarm-random-'));
    const store = new Store(openDatabase(path.join(dir, 'nftfarm.db')));
    t.teardown(() => {
      store.close();
      fs.rmSync(dir, { recursive: true, force: true });
    });
    const kernel = new FakeKernel();
    const reconciler = reconcilerOn(t, store, kernel);
    await reconciler.start();
    const done: string[] = [];
    for (let i = 0; i < 400; i++) {
      kernel.delayMs = rng.next() < 0.2 ? rng.int(3) : 0;
      // Now and then the kernel refuses a commit: the pass fails and a full pass repairs.
      if (rng.next() < 0.02) kernel.failNext = 1;
      done.push(randomWrite(store, rng));
      await randomPause(reconciler, rng);
    }
    // A failed pass is retried after its backoff: wait for the pass that applies the last write.
    const deadline = Date.now() + 10_000;
    do {
      await reconciler.idle();
      if (reconciler.system().appliedGeneration === store.generation()) break;
      await new Promise((r) => setTimeout(r, 5));
    } while (Date.now() < deadline);
    t.equal(reconciler.system().appliedGeneration, store.generation(), 'applied generation == store generation');

    const fresh = new FakeKernel();
    const reference = reconcilerOn(t, store, fresh);
    await reference.start();
    t.equal(reference.system().lastError, null, 'the full load applied');
    t.equal(reconciler.system().lastError, null, 'the live reconciler has no error');
    const same = kernel.snapshot() === fresh.snapshot();
    t.ok(same, `the live kernel equals a full load of the store, after ${done.length} writes (${kernel.accepted.length} transactions)`);
    if (!same) {
      t.comment(`last writes: ${done.slice(-15).join('; ')}`);
      t.same(differences(kernel, fresh), [], 'the difference');
    }
  });
}
