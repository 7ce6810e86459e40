/**
 * Issue 12, item 2: identical selection on every node. Two nodes given the same backends
 * (address, port, weight, priority) in any order must send a given flow to the same backend:
 * the ECMP router may move a flow from one node to the other at any time, and the second node
 * has never seen it. The selection may depend on what the operator configured, never on local
 * ids, insertion order or per-node randomness.
 *
 * `selectorUnderTest` is the seam: it builds "flow hash -> backend" from configured backends
 * the way the data plane does. Today it models src/reconcile/buckets.ts, whose tables are keyed
 * by the ZAPI backend id (the lowest free id, so insertion order), which breaks the
 * requirement. Until the selection tables of issue 10 land:
 * - the requirement is checked on `addressKeyedSelector`, a reference that keys the same
 *   rendezvous hashing on address and port (so the contract itself is tested and satisfiable);
 * - the gap of today's tables is pinned by a tripwire that asserts it.
 * When the new builder lands: point `selectorUnderTest` at it, delete the tripwire (it fails
 * then), and run the requirement on `selectorUnderTest`.
 */
import t, { type Test } from 'tap';
import { BUCKETS, fnv1a, normalizedMembers, rendezvousTable } from '../../src/reconcile/buckets.js';

export interface ConfiguredBackend {
  ip: string;
  port: number | null;
  weight: number;
  priority: number;
}

/** flow hash (0 .. 2^32-1) -> "ip:port" of the chosen backend. */
export type Selector = (backends: readonly ConfiguredBackend[]) => (flowHash: number) => string;

const label = (b: ConfiguredBackend) => `${b.ip}:${b.port ?? ''}`;

/** Today's tables: backends enter in the order given (ids 0, 1, 2... as the API assigns them). */
const todaysSelector: Selector = (backends) => {
  const best = Math.min(...backends.map((b) => b.priority));
  const serving = backends.map((b, id) => ({ b, id })).filter(({ b }) => b.priority === best);
  const table = rendezvousTable(normalizedMembers(serving.map(({ b, id }) => ({ slot: id, weight: b.weight }))), BUCKETS);
  const byId = new Map(serving.map(({ b, id }) => [id, b]));
  // nft's `jhash ... mod M` is (hash * M) >> 32.
  return (hash) => label(byId.get(table[Math.floor((hash * BUCKETS) / 2 ** 32)]!)!);
};

const selectorUnderTest: Selector = todaysSelector;

/** The requirement's reference: the same weighted rendezvous hashing, members keyed by address and port. */
const addressKeyedSelector: Selector = (backends) => {
  const best = Math.min(...backends.map((b) => b.priority));
  const serving = backends.filter((b) => b.priority === best);
  const key = (b: ConfiguredBackend) => fnv1a(label(b)) >>> 1;
  const table = rendezvousTable(normalizedMembers(serving.map((b) => ({ slot: key(b), weight: b.weight }))), BUCKETS);
  const byKey = new Map(serving.map((b) => [key(b), b]));
  return (hash) => label(byKey.get(table[Math.floor((hash * BUCKETS) / 2 ** 32)]!)!);
};

function generator(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return s / 2 ** 32;
  };
}

function randomBackends(rnd: () => number): ConfiguredBackend[] {
  const n = 2 + Math.floor(rnd() * 8);
  const out: ConfiguredBackend[] = [];
  while (out.length < n) {
    const b = { ip: `10.0.${Math.floor(rnd() * 4)}.${1 + Math.floor(rnd() * 250)}`, port: rnd() < 0.3 ? 8000 + Math.floor(rnd() * 3) : null, weight: 1 + Math.floor(rnd() * 9), priority: rnd() < 0.8 ? 1 : 2 };
    if (!out.some((o) => label(o) === label(b))) out.push(b);
  }
  return out;
}

function shuffled<T>(list: readonly T[], rnd: () => number): T[] {
  const out = [...list];
  for (let i = out.length - 1; i > 0; i--) {
    const j = Math.floor(rnd() * (i + 1));
    [out[i], out[j]] = [out[j]!, out[i]!];
  }
  return out;
}

/** How many of `flows` sample hashes two backend orders send to different backends. */
function disagreements(select: Selector, a: readonly ConfiguredBackend[], b: readonly ConfiguredBackend[], rnd: () => number, flows = 2000): number {
  const one = select(a);
  const two = select(b);
  let differ = 0;
  for (let i = 0; i < flows; i++) {
    const hash = Math.floor(rnd() * 2 ** 32);
    if (one(hash) !== two(hash)) differ++;
  }
  return differ;
}

t.test('the same backends given in the same order: every flow gets the same backend', async (t) => {
  const rnd = generator(12);
  for (let trial = 0; trial < 20; trial++) {
    const backends = randomBackends(rnd);
    t.equal(disagreements(selectorUnderTest, backends, backends.map((b) => ({ ...b })), rnd), 0);
  }
});

/** The requirement: the same backends in any order send every sampled flow to the same backend. */
function requirement(t: Test, select: Selector): void {
  const rnd = generator(2026);
  for (let trial = 0; trial < 30; trial++) {
    const backends = randomBackends(rnd);
    const differ = disagreements(select, backends, shuffled(backends, rnd), rnd);
    t.equal(differ, 0, `${backends.length} backends, reordered: ${differ} of 2000 flows go elsewhere`);
  }
}

t.test('the same (ip, port, weight, priority) set in any order: every flow gets the same backend (reference selector)', async (t) => {
  requirement(t, addressKeyedSelector);
});

t.test('TRIPWIRE until issue 10: today\'s id-keyed tables send reordered backends\' flows elsewhere', async (t) => {
  // Delete this test and run requirement(t, selectorUnderTest) once the new tables land.
  const rnd = generator(2026);
  let worst = 0;
  for (let trial = 0; trial < 30; trial++) {
    const backends = randomBackends(rnd);
    worst = Math.max(worst, disagreements(selectorUnderTest, backends, shuffled(backends, rnd), rnd));
  }
  t.ok(worst > 0, `today's tables move up to ${worst} of 2000 flows when the same backends come in another order`);
});
