/**
 * The selection tables (pure): exact shares, a table that depends only on what the operator
 * configured (addresses, ports, weights; never marks or input order), how much a removal,
 * an addition or a weight change moves, and the round-robin cycle.
 */
import t from 'tap';
import { consistentTable, regionSize, roundRobinTable, websterCounts, type SelectionMember } from '../../src/reconcile/selection.js';

/** A seeded generator: the random sets are the same on every run (and can be replayed). */
function generator(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return s / 2 ** 32;
  };
}

const countOf = (table: Uint32Array, mark: number): number => table.reduce((n, m) => n + (m === mark ? 1 : 0), 0);

function randomSet(rnd: () => number, max = 16): SelectionMember[] {
  const n = 2 + Math.floor(rnd() * (max - 1));
  return Array.from({ length: n }, (_, i) => ({
    identity: `10.0.${Math.floor(rnd() * 250)}.${i + 1}:${rnd() < 0.5 ? '80' : ''}`,
    weight: 1 + Math.floor(rnd() * 9),
    mark: 100 + i,
  }));
}

/** Buckets whose backend changed between two tables, other than those of `exempt` (in either table). */
const movedOthers = (a: Uint32Array, b: Uint32Array, exempt: number): number => a.reduce((n, m, i) => n + (m !== b[i] && m !== exempt && b[i] !== exempt ? 1 : 0), 0);

t.test('region sizes: one bucket for one backend, 64 up to 16 backends, then 4 per backend', async (t) => {
  t.equal(regionSize(0), 1);
  t.equal(regionSize(1), 1);
  t.equal(regionSize(2), 64);
  t.equal(regionSize(16), 64);
  t.equal(regionSize(17), 128);
  t.equal(regionSize(1024), 4096);
  t.equal(regionSize(5000), 4096, 'never beyond the region');
});

t.test('Webster counts: proportional, and a removal never lowers another count', async (t) => {
  t.strictSame(websterCounts([1, 2, 3], 64), [11, 21, 32]);
  t.strictSame(websterCounts([1, 1, 1, 1], 64), [16, 16, 16, 16]);
  const rnd = generator(9);
  for (let trial = 0; trial < 200; trial++) {
    const weights = Array.from({ length: 2 + Math.floor(rnd() * 15) }, () => 1 + Math.floor(rnd() * 9));
    const before = websterCounts(weights, 64);
    t.equal(before.reduce((a, b) => a + b, 0), 64);
    const victim = Math.floor(rnd() * weights.length);
    const after = websterCounts(weights.filter((_, i) => i !== victim), 64);
    const others = before.filter((_, i) => i !== victim);
    if (after.some((c, i) => c < others[i]!)) t.fail(`weights ${weights} without ${victim}: ${others} -> ${after}`);
  }
});

t.test('over random weighted sets: each share within 1/size (and 2 points) of its weight', async (t) => {
  const rnd = generator(20261204);
  let worst = 0;
  for (let trial = 0; trial < 200; trial++) {
    const members = randomSet(rnd);
    const size = regionSize(members.length);
    const table = consistentTable(members, size);
    const total = members.reduce((s, m) => s + m.weight, 0);
    t.notOk(table.includes(0), 'every bucket filled');
    for (const m of members) {
      const off = Math.abs(countOf(table, m.mark) / size - m.weight / total);
      worst = Math.max(worst, off);
      if (off >= 1 / size) t.fail(`${m.identity} weight ${m.weight}/${total}: ${countOf(table, m.mark)} of ${size}`);
    }
  }
  t.ok(worst < 0.02, `worst share error ${(worst * 100).toFixed(2)} points`);
});

t.test('the table depends on addresses, ports and weights only: any order, any marks, every node the same', async (t) => {
  const rnd = generator(77);
  for (let trial = 0; trial < 50; trial++) {
    const members = randomSet(rnd);
    const size = regionSize(members.length);
    const a = consistentTable(members, size);
    // Another node: other local marks, another insertion order.
    const remark = new Map(members.map((m, i) => [m.mark, 5000 + ((i * 7) % members.length)]));
    const shuffled = [...members].reverse().map((m) => ({ ...m, mark: remark.get(m.mark)! }));
    const b = consistentTable(shuffled, size);
    t.ok(a.every((mark, i) => remark.get(mark) === b[i]), `trial ${trial}: the same backend in every bucket`);
  }
  const one = [{ identity: '10.0.0.1:', weight: 1, mark: 1 }];
  t.notSame(consistentTable([...one, { identity: '10.0.0.2:', weight: 1, mark: 2 }], 64), consistentTable([...one, { identity: '10.0.0.2:80', weight: 1, mark: 2 }], 64), 'the port is part of the identity');
  t.strictSame([...consistentTable([], 64)], new Array(64).fill(0), 'no member: no bucket filled');
});

/*
 * Exact shares in a small table cost a little movement: a removal frees the removed backend's
 * buckets, and the counts of the others grow by whole buckets, which moves a few of the other
 * backends' buckets too. Measured over these sets (64-bucket tables): about 5% of the table on
 * average beyond the removed backend's own share, at most 12.5%. Established flows never
 * move: they are pinned (dsr, stateless_dnat) or tracked by conntrack (nat, dnat).
 */
t.test('removing, adding or re-weighting one backend moves little besides its own buckets', async (t) => {
  const rnd = generator(4242);
  const trials = 200;
  const sum = { removal: 0, addition: 0, weight: 0 };
  const worst = { removal: 0, addition: 0, weight: 0 };
  for (let trial = 0; trial < trials; trial++) {
    const members = randomSet(rnd);
    const size = regionSize(members.length);
    const before = consistentTable(members, size);
    const victim = members[Math.floor(rnd() * members.length)]!;
    const removed = consistentTable(members.filter((m) => m !== victim), size);
    t.notOk(removed.includes(victim.mark), 'the removed backend is gone');
    t.ok(before.every((m, i) => m !== victim.mark || removed[i] !== victim.mark), 'all its buckets moved');
    const added = { identity: `10.9.9.${trial}:`, weight: 1 + Math.floor(rnd() * 9), mark: 99 };
    const grown = consistentTable([...members, added], size);
    const heavier = members[Math.floor(rnd() * members.length)]!;
    const reweighted = consistentTable(members.map((m) => (m === heavier ? { ...m, weight: m.weight === 9 ? 8 : m.weight + 1 } : m)), size);
    const moved = { removal: movedOthers(before, removed, victim.mark) / size, addition: movedOthers(before, grown, added.mark) / size, weight: movedOthers(before, reweighted, heavier.mark) / size };
    for (const k of ['removal', 'addition', 'weight'] as const) {
      sum[k] += moved[k];
      worst[k] = Math.max(worst[k], moved[k]);
    }
  }
  t.comment(
    `others' buckets moved, average / worst: removal ${((sum.removal / trials) * 100).toFixed(1)}% / ${(worst.removal * 100).toFixed(1)}%, ` +
      `addition ${((sum.addition / trials) * 100).toFixed(1)}% / ${(worst.addition * 100).toFixed(1)}%, weight change ${((sum.weight / trials) * 100).toFixed(1)}% / ${(worst.weight * 100).toFixed(1)}%`,
  );
  t.ok(sum.removal / trials <= 0.06, 'a removal moves under 6% of the others on average');
  t.ok(worst.removal <= 0.16, 'and never more than 16%');
  t.ok(sum.addition / trials <= 0.07 && worst.addition <= 0.2, 'an addition likewise');
  t.ok(sum.weight / trials <= 0.03 && worst.weight <= 0.12, 'a weight change moves fewer');
});

t.test('round robin: each member its Webster count, spread evenly', async (t) => {
  const members = [
    { identity: 'a', weight: 2, mark: 1 },
    { identity: 'b', weight: 1, mark: 2 },
    { identity: 'c', weight: 1, mark: 3 },
  ];
  const table = roundRobinTable(members, 64);
  t.strictSame([countOf(table, 1), countOf(table, 2), countOf(table, 3)], [32, 16, 16]);
  for (let i = 1; i < 64; i++) if (table[i] === table[i - 1] && table[i] !== 1) t.fail(`a light member twice in a row at ${i}`);
  t.strictSame(roundRobinTable([...members].reverse(), 64), table, 'input order does not matter');
  t.equal(roundRobinTable([members[0]!], 1)[0], 1);
});
