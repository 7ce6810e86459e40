/**
 * The bucket tables that spread new flows over backends. Pure and deterministic: the same
 * configuration gives the same table on every node and every run (nodes behind ECMP agree),
 * with integer arithmetic only.
 *
 * Weighted rendezvous hashing (HRW) over a fixed number of buckets: each bucket goes to the
 * backend with the highest score for it, where a backend of weight w draws w scores and keeps
 * the highest (so it wins a bucket with probability w / total weight). Removing a backend
 * moves exactly the buckets it had and nothing else; adding one takes buckets from the others
 * in proportion; a weight change moves buckets only to or from that backend. Maglev tables,
 * tried first, also moved 2-9% of the other backends' buckets on a removal.
 *
 * Backends are identified by their slot (the ZAPI backend id), not their address: a table
 * depends only on the slots and weights, so every farm with the same shape shares one table
 * in the kernel (10,000 farms of 4 equal backends: one table), which makes large tables, and
 * so shares within a fraction of a percent of the weights, affordable.
 */

/** Buckets per table: a prime; a share's standard deviation is at most 0.4 points (sqrt(0.25 / 16381)). */
export const BUCKETS = 16381;

export interface TableMember {
  /** Stable identity within the farm: the backend's ZAPI id. */
  slot: number;
  /** 1-9 (ZAPI's range). */
  weight: number;
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

/** MurmurHash3's finaliser: every input bit affects every output bit. */
function mix32(x: number): number {
  let h = x >>> 0;
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
}

/** Bucket -> slot, every bucket filled; empty when there is no member. */
export function rendezvousTable(members: readonly TableMember[], size = BUCKETS): number[] {
  if (members.length === 0) return [];
  const sorted = [...members].sort((a, b) => a.slot - b.slot);
  // One seed per unit of weight: the member's score for a bucket is the best of its draws.
  const seeds = sorted.map((m) => Array.from({ length: Math.max(1, m.weight) }, (_, draw) => fnv1a(`slot ${m.slot} draw ${draw}`)));
  const table = new Array<number>(size);
  for (let bucket = 0; bucket < size; bucket++) {
    const salt = Math.imul(bucket + 1, 0x9e3779b1) >>> 0;
    let best = -1;
    let winner = 0;
    for (let i = 0; i < sorted.length; i++) {
      for (const seed of seeds[i]!) {
        const score = mix32(seed ^ salt);
        // Ties (1 in 2^32) go to the lower slot: members are sorted by slot.
        if (score > best) {
          best = score;
          winner = sorted[i]!.slot;
        }
      }
    }
    table[bucket] = winner;
  }
  return table;
}

/** The members' weights reduced by their common divisor: 2:2:4 and 1:1:2 share a table. */
export function normalizedMembers(members: readonly TableMember[]): TableMember[] {
  const gcd = (a: number, b: number): number => (b === 0 ? a : gcd(b, a % b));
  const g = members.reduce((acc, m) => gcd(acc, m.weight), 0) || 1;
  return [...members].sort((a, b) => a.slot - b.slot).map((m) => ({ slot: m.slot, weight: m.weight / g }));
}

export interface RoundRobinMember {
  /** Decides the order of equal turns. */
  key: string;
  weight: number;
  value: number;
}

/**
 * Smooth weighted round robin (as in nginx): the order in which new flows are given to
 * backends, spreading each backend's turns evenly. Length = sum of weights.
 */
export function roundRobinSequence(members: readonly RoundRobinMember[]): number[] {
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
