import t from 'tap';
import { maglevTable, roundRobinSequence, tableSizeFor, TABLE_SIZES, type MaglevMember } from '../../src/reconcile/maglev.js';

const members = (n: number, weight = 1): MaglevMember[] =>
  Array.from({ length: n }, (_, i) => ({ key: `10.0.0.${i + 1}:`, weight, value: i + 1 }));

const shares = (table: number[]): Map<number, number> => {
  const counts = new Map<number, number>();
  for (const v of table) counts.set(v, (counts.get(v) ?? 0) + 1);
  return counts;
};

t.test('every bucket is filled, with every member', async (t) => {
  const table = maglevTable(members(3), 251);
  t.equal(table.length, 251);
  t.notOk(table.includes(-1));
  t.same([...shares(table).keys()].sort(), [1, 2, 3]);
  t.same(maglevTable([], 251), [], 'no member, no table');
});

t.test('the table does not depend on the order of the members', async (t) => {
  const m = members(5);
  t.same(maglevTable([...m].reverse(), 509), maglevTable(m, 509));
});

t.test('equal weights get equal shares, weights are honoured', async (t) => {
  const equal = shares(maglevTable(members(4), 1021));
  for (const count of equal.values()) t.ok(Math.abs(count - 1021 / 4) <= 2, `share ${count} is a quarter`);
  const weighted = shares(maglevTable([{ key: 'a', weight: 3, value: 1 }, { key: 'b', weight: 1, value: 2 }], 1021));
  t.ok(Math.abs(weighted.get(1)! / 1021 - 0.75) < 0.01, `weight 3 of 4 gets ${weighted.get(1)} of 1021`);
});

t.test('removing one member moves only its buckets (and few others)', async (t) => {
  const m = members(5);
  const before = maglevTable(m, 509);
  const after = maglevTable(m.filter((x) => x.value !== 3), 509);
  let movedOthers = 0;
  for (let i = 0; i < before.length; i++) if (before[i] !== 3 && before[i] !== after[i]) movedOthers++;
  t.ok(movedOthers / 509 < 0.05, `only ${movedOthers} buckets of the remaining members moved`);
  t.notOk(after.includes(3));
});

t.test('table size grows with the configured backends and is a prime', async (t) => {
  t.equal(tableSizeFor(0), 251);
  t.equal(tableSizeFor(2), 251);
  t.equal(tableSizeFor(3), 509);
  t.equal(tableSizeFor(1000), 65521);
  for (const m of TABLE_SIZES) for (let d = 2; d * d <= m; d++) t.not(m % d, 0, `${m} is prime`);
});

t.test('round robin spreads the turns by weight, evenly', async (t) => {
  const seq = roundRobinSequence([{ key: 'a', weight: 2, value: 1 }, { key: 'b', weight: 1, value: 2 }, { key: 'c', weight: 1, value: 3 }]);
  t.equal(seq.length, 4);
  t.same([...shares(seq)].sort(), [[1, 2], [2, 1], [3, 1]]);
  t.not(seq[0], seq[1], 'the heavy member does not take two turns in a row');
});
