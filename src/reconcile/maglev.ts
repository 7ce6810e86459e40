/**
 * Maglev consistent hashing (Eisenbud et al., NSDI 2016), weighted. Deterministic: the same
 * backends and weights give the same table on every node and every run, whatever their order
 * in the store, so nodes behind ECMP pick the same backend for a flow. Removing one backend
 * moves only (about) the flows of that backend.
 */

export interface MaglevMember {
  /** Stable identity of the backend, e.g. "10.0.0.21:80". Decides its preferred buckets. */
  key: string;
  weight: number;
  /** What the table stores for this member (the backend's mark). */
  value: number;
}

/** Table sizes: primes, so every permutation visits every bucket. */
export const TABLE_SIZES = [251, 509, 1021, 2039, 4093, 8191, 16381, 32749, 65521] as const;

/**
 * The table size for a farm with this many configured backends: about 100 buckets per
 * backend keeps the share of each within ~1% of its weight. Chosen from the configured
 * count, not the healthy count, so a failing backend does not resize (and reshuffle) the table.
 */
export function tableSizeFor(configuredBackends: number): number {
  const wanted = 100 * Math.max(1, configuredBackends);
  return TABLE_SIZES.find((m) => m >= wanted) ?? TABLE_SIZES[TABLE_SIZES.length - 1]!;
}

/** 32-bit FNV-1a: small, fast and the same everywhere. */
export function fnv1a(text: string, seed = 0x811c9dc5): number {
  let h = seed >>> 0;
  for (let i = 0; i < text.length; i++) {
    h ^= text.charCodeAt(i);
    h = Math.imul(h, 0x01000193) >>> 0;
  }
  return h >>> 0;
}

/** Returns bucket -> member value, every bucket filled; empty when there is no member. */
export function maglevTable(members: readonly MaglevMember[], size: number): number[] {
  if (members.length === 0) return [];
  const sorted = [...members].sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0));
  const offsets = sorted.map((m) => fnv1a(m.key) % size);
  const skips = sorted.map((m) => (fnv1a(m.key, 0x01234567) % (size - 1)) + 1);
  const next = sorted.map(() => 0);
  const table = new Array<number>(size).fill(-1);
  let filled = 0;
  while (filled < size) {
    for (let i = 0; i < sorted.length && filled < size; i++) {
      // A member of weight w takes w buckets per round: its share follows its weight.
      for (let turn = 0; turn < sorted[i]!.weight && filled < size; turn++) {
        let bucket: number;
        do {
          bucket = (offsets[i]! + next[i]! * skips[i]!) % size;
          next[i]!++;
        } while (table[bucket] !== -1);
        table[bucket] = sorted[i]!.value;
        filled++;
      }
    }
  }
  return table;
}

/**
 * Smooth weighted round robin (as in nginx): the order in which new flows are given to
 * backends, spreading each backend's turns evenly. Length = sum of weights.
 */
export function roundRobinSequence(members: readonly MaglevMember[]): number[] {
  const sorted = [...members].sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0));
  const total = sorted.reduce((sum, m) => sum + m.weight, 0);
  const current = sorted.map(() => 0);
  const sequence: number[] = [];
  for (let n = 0; n < total; n++) {
    let best = 0;
    for (let i = 0; i < sorted.length; i++) {
      current[i]! += sorted[i]!.weight;
      if (current[i]! > current[best]!) best = i;
    }
    current[best]! -= total;
    sequence.push(sorted[best]!.value);
  }
  return sequence;
}
