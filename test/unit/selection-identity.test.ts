/**
 * Issue 12, item 2: identical selection on every node. Two nodes given the same backends
 * (address, port, weight, priority) in any order must send a given flow to the same backend:
 * the ECMP router may move a flow from one node to the other at any time, and the second node
 * has never seen it. The selection may depend on what the operator configured, never on local
 * ids, insertion order or per-node randomness.
 *
 * The selector here is the data plane's own pipeline: the backends are stored in the order
 * given (so their store uids and ZAPI ids follow that order, as on a node configured in that
 * order), the farm is derived and its selection region built (src/reconcile), and a flow hash
 * picks a bucket the way nft's `jhash ... mod N` does (a range split: hash x N / 2^32).
 */
import t, { type Test } from 'tap';
import { desiredFarm, localAddressesOf } from '../../src/reconcile/desired.js';
import { selectionRegion } from '../../src/reconcile/farm-render.js';
import { backend, facts, farm, interfaces } from '../helpers/fixtures.js';

export interface ConfiguredBackend {
  ip: string;
  port: number | null;
  weight: number;
  priority: number;
}

/** flow hash (0 .. 2^32-1) -> "ip:port" of the chosen backend. */
export type Selector = (backends: readonly ConfiguredBackend[]) => (flowHash: number) => string;

const label = (b: ConfiguredBackend) => `${b.ip}:${b.port ?? ''}`;

/** What this node's kernel would hold for a farm with these backends, configured in this order. */
const dataPlaneSelector: Selector = (backends) => {
  // Local numbering follows the order of configuration: uids from 100, ZAPI ids from 0.
  const stored = backends.map((b, i) => backend(100 + i, 1, i, b.ip, { port: b.port, weight: b.weight, priority: b.priority }));
  const derived = desiredFarm({ farm: farm(1, { nattype: 'nat' }), backends: stored, healthCheck: null }, facts(), localAddressesOf(interfaces));
  const region = selectionRegion(derived, 'ip');
  const byMark = new Map(stored.map((b, i) => [b.uid, backends[i]!]));
  return (hash) => label(byMark.get(region.marks[Math.floor((hash * region.marks.length) / 2 ** 32)]!)!);
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
    t.equal(disagreements(dataPlaneSelector, backends, backends.map((b) => ({ ...b })), rnd), 0);
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

t.test('the same (ip, port, weight, priority) set in any order: every flow gets the same backend', async (t) => {
  requirement(t, dataPlaneSelector);
});
