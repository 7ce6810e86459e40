/**
 * The consistent-hash table builder (pure): shares follow weights, a removal moves only the
 * removed backend's buckets (at most 1/N + 2% over random backend sets), the same members
 * always give the same table, and the round-robin sequence.
 */
import t from 'tap';
import { BUCKETS, normalizedMembers, rendezvousTable, roundRobinSequence, type TableMember } from '../../src/reconcile/buckets.js';

/** A seeded generator: the random sets are the same on every run (and can be replayed). */
function generator(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return s / 2 ** 32;
  };
}

const counts = (table: number[]): Map<number, number> => {
  const out = new Map<number, number>();
  for (const v of table) out.set(v, (out.get(v) ?? 0) + 1);
  return out;
};

function randomSet(rnd: () => number, weighted: boolean): TableMember[] {
  const n = 2 + Math.floor(rnd() * 40);
  // Slots are ZAPI ids: mostly dense, with gaps where backends were deleted.
  const slots = new Set<number>();
  while (slots.size < n) slots.add(Math.floor(rnd() * n * 1.5));
  return [...slots].map((slot) => ({ slot, weight: weighted ? 1 + Math.floor(rnd() * 9) : 1 }));
}

t.test('over random backend sets, removing one of N moves at most 1/N + 2% of the buckets', async (t) => {
  const rnd = generator(20261126);
  let worstExcess = -1;
  let worstOthersMoved = 0;
  for (let trial = 0; trial < 60; trial++) {
    const members = randomSet(rnd, false);
    const before = rendezvousTable(members, BUCKETS);
    const victim = members[Math.floor(rnd() * members.length)]!;
    const after = rendezvousTable(members.filter((m) => m !== victim), BUCKETS);
    let moved = 0;
    let othersMoved = 0;
    for (let b = 0; b < BUCKETS; b++) {
      if (before[b] === after[b]) continue;
      moved++;
      if (before[b] !== victim.slot) othersMoved++;
    }
    worstExcess = Math.max(worstExcess, moved / BUCKETS - 1 / members.length);
    worstOthersMoved = Math.max(worstOthersMoved, othersMoved);
    t.ok(moved / BUCKETS <= 1 / members.length + 0.02, `N=${members.length}: ${moved} of ${BUCKETS} buckets moved`);
    t.notOk(after.includes(victim.slot), 'the removed backend is gone from the table');
  }
  t.equal(worstOthersMoved, 0, 'no bucket of a remaining backend ever moved');
  t.comment(`worst excess over 1/N: ${(worstExcess * 100).toFixed(2)} points`);
});

t.test('over random weighted sets, each share is within 2 points of its weight, and a removal moves only its buckets', async (t) => {
  const rnd = generator(7);
  let worst = 0;
  for (let trial = 0; trial < 60; trial++) {
    const members = randomSet(rnd, true);
    const total = members.reduce((s, m) => s + m.weight, 0);
    const table = rendezvousTable(members, BUCKETS);
    const c = counts(table);
    for (const m of members) {
      const off = Math.abs((c.get(m.slot) ?? 0) / BUCKETS - m.weight / total);
      worst = Math.max(worst, off);
      if (off > 0.02) t.fail(`slot ${m.slot} weight ${m.weight}/${total}: share ${c.get(m.slot)}/${BUCKETS}`);
    }
    const victim = members[Math.floor(rnd() * members.length)]!;
    const after = rendezvousTable(members.filter((m) => m !== victim), BUCKETS);
    let moved = 0;
    for (let b = 0; b < BUCKETS; b++) if (table[b] !== after[b]) moved++;
    t.ok(moved / BUCKETS <= victim.weight / total + 0.02, `weighted N=${members.length}: ${moved} moved, the victim had ${c.get(victim.slot)}`);
  }
  t.ok(worst <= 0.02, `worst share error ${(worst * 100).toFixed(2)} points`);
});

t.test('adding a backend takes buckets from the others only; a weight change moves buckets only to or from it', async (t) => {
  const four = [0, 1, 2, 3].map((slot) => ({ slot, weight: 1 }));
  const before = rendezvousTable(four);
  const five = rendezvousTable([...four, { slot: 4, weight: 1 }]);
  for (let b = 0; b < BUCKETS; b++) if (before[b] !== five[b]) t.equal(five[b], 4, 'a moved bucket went to the new backend');
  const heavier = rendezvousTable(four.map((m) => (m.slot === 0 ? { slot: 0, weight: 3 } : m)));
  let wrong = 0;
  for (let b = 0; b < BUCKETS; b++) if (before[b] !== heavier[b] && heavier[b] !== 0) wrong++;
  t.equal(wrong, 0, 'every moved bucket went to the re-weighted backend');
  t.ok(Math.abs((counts(heavier).get(0) ?? 0) / BUCKETS - 0.5) < 0.01, 'weight 3 of 6 gets half');
});

t.test('the same members give the same table, whatever their order; weights reduce to their ratio', async (t) => {
  const m = [{ slot: 3, weight: 2 }, { slot: 0, weight: 1 }, { slot: 7, weight: 4 }];
  t.same(rendezvousTable([...m].reverse()), rendezvousTable(m));
  t.same(normalizedMembers([{ slot: 1, weight: 2 }, { slot: 0, weight: 4 }]), [{ slot: 0, weight: 2 }, { slot: 1, weight: 1 }]);
  t.same(rendezvousTable([]), [], 'no member, no table');
  t.equal(rendezvousTable([{ slot: 5, weight: 1 }]).length, BUCKETS);
  for (let d = 2; d * d <= BUCKETS; d++) if (BUCKETS % d === 0) t.fail(`${BUCKETS} is not prime`);
});

t.test('round robin spreads the turns by weight, evenly', async (t) => {
  const seq = roundRobinSequence([{ key: 'a', weight: 2, value: 1 }, { key: 'b', weight: 1, value: 2 }, { key: 'c', weight: 1, value: 3 }]);
  t.equal(seq.length, 4);
  t.same([...counts(seq)].sort(), [[1, 2], [2, 1], [3, 1]]);
  t.not(seq[0], seq[1], 'the heavy member does not take two turns in a row');
});
