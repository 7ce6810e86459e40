/**
 * Selection tables: how a farm spreads new flows over its backends. Each farm owns a region
 * of `regionSize()` buckets in one table-wide map (bucket -> backend mark); the farm's rule
 * hashes a new flow (or counts it, for round robin) into its region. Pure and deterministic:
 * integer arithmetic only, and a table depends only on what the operator configured (each
 * backend's address and port, weight and role), never on store ids or insertion order, so
 * every node behind ECMP builds the same table from the same configuration.
 *
 * Why regions of tens of buckets and not one big consistent-hash table per weight shape: real
 * farms have varied weights, and a 16,381-bucket table per shape made 1,000 farms cost 16
 * million kernel elements. A region costs 64 elements for up to 16 backends, whatever the
 * weights, so elements grow with farms and backends, not with shapes.
 *
 * Shares are exact to the bucket: each backend gets the number of buckets its weight is
 * due (Sainte-Laguë/Webster apportionment, which never takes a bucket from a backend when
 * another one leaves), so its share is within 1/size of its weight (1.6 points at 64).
 * Which buckets: weighted rendezvous hashing decides each bucket's order of preference over
 * the backends, and buckets are filled in decreasing order of preference score up to each
 * backend's count. Removing a backend frees its buckets, which go to their next preferences;
 * the other backends keep theirs except for the few buckets the exact counts move (the
 * price of exact shares in a small table: about 4% of a 64-bucket table on average, measured
 * in test/unit/selection.test.ts). Flows already established never move: they are pinned
 * (dsr, stateless_dnat) or tracked by conntrack (nat, dnat).
 */

export interface SelectionMember {
  /** What identifies the backend on every node: its address and port ("10.0.0.1:80", "10.0.0.1:"). */
  identity: string;
  /** 1-9 (ZAPI's range). */
  weight: number;
  /** What the table answers for it: the backend's mark. */
  mark: number;
}

/** The largest region: 2^REGION_BITS buckets (farms with more than 512 backends). */
export const REGION_BITS = 12;

/**
 * Buckets in a farm's region, from the number of backends configured (not the number serving
 * now, so health flaps never resize a table). One backend needs one bucket; a change of size
 * (at 2, 17, 33... backends) rewrites the farm's rule and redistributes its buckets.
 */
export function regionSize(configuredBackends: number): number {
  if (configuredBackends <= 1) return 1;
  let size = 64;
  while (size < 4 * configuredBackends && size < 2 ** REGION_BITS) size *= 2;
  return size;
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

/**
 * Sainte-Laguë (Webster) apportionment of `size` buckets by weight: each bucket in turn goes
 * to the member with the highest weight / (2 x buckets so far + 1); ties to the lower index.
 * A divisor method: removing a member never lowers another member's count.
 */
export function websterCounts(weights: readonly number[], size: number): number[] {
  const counts = weights.map(() => 0);
  if (weights.length === 0) return counts;
  for (let k = 0; k < size; k++) {
    let best = 0;
    for (let i = 1; i < weights.length; i++) {
      // w_i / (2c_i + 1) > w_best / (2c_best + 1), in integers.
      if (weights[i]! * (2 * counts[best]! + 1) > weights[best]! * (2 * counts[i]! + 1)) best = i;
    }
    counts[best]!++;
  }
  return counts;
}

/** Members in their canonical order (by identity), so input order never matters. */
const canonical = (members: readonly SelectionMember[]): SelectionMember[] =>
  [...members].sort((a, b) => (a.identity < b.identity ? -1 : a.identity > b.identity ? 1 : 0));

/** How many of each bucket's best preferences the fill looks at before a full scan. */
const PREFERENCES_KEPT = 8;

/**
 * The consistent-hash table: bucket -> mark, every bucket filled (empty without members).
 * A member of weight w draws w rendezvous scores per bucket and keeps the best, so it is a
 * bucket's first preference with probability w / total; buckets are then given out in
 * decreasing order of score, each to its best preference that still has room.
 */
export function consistentTable(members: readonly SelectionMember[], size: number): Uint32Array {
  const table = new Uint32Array(size);
  if (members.length === 0 || size === 0) return table;
  const sorted = canonical(members);
  const counts = websterCounts(sorted.map((m) => m.weight), size);
  const seeds = sorted.map((m) => Array.from({ length: Math.max(1, m.weight) }, (_, draw) => fnv1a(`${m.identity}#${draw}`)));
  const score = (i: number, bucket: number): number => {
    const salt = Math.imul(bucket + 1, 0x9e3779b1) >>> 0;
    let best = 0;
    for (const seed of seeds[i]!) best = Math.max(best, mix32(seed ^ salt));
    return best;
  };
  // Each bucket's best few preferences, as (score, bucket, member) in one list.
  const kept = Math.min(PREFERENCES_KEPT, sorted.length);
  const pairs: Preference[] = [];
  const top: Preference[] = [];
  for (let bucket = 0; bucket < size; bucket++) {
    top.length = 0;
    for (let i = 0; i < sorted.length; i++) {
      const s = score(i, bucket);
      // Insertion into the few best so far: a full sort per bucket costs seconds at 1,024 backends.
      if (top.length === kept && s <= top[kept - 1]!.score) continue;
      const p = { score: s, bucket, member: i };
      let at = Math.min(top.length, kept - 1);
      top[at] = p;
      while (at > 0 && byPreference(top[at]!, top[at - 1]!) < 0) {
        [top[at], top[at - 1]] = [top[at - 1]!, top[at]!];
        at--;
      }
    }
    pairs.push(...top);
  }
  pairs.sort(byPreference);
  const filled = new Uint8Array(size);
  const room = [...counts];
  for (const p of pairs) {
    if (filled[p.bucket] || room[p.member] === 0) continue;
    table[p.bucket] = sorted[p.member]!.mark;
    filled[p.bucket] = 1;
    room[p.member]!--;
  }
  // Buckets whose kept preferences were all full (rare): their best member with room.
  for (let bucket = 0; bucket < size; bucket++) {
    if (filled[bucket]) continue;
    let best = -1;
    let bestScore = -1;
    for (let i = 0; i < sorted.length; i++) {
      if (room[i] === 0) continue;
      const s = score(i, bucket);
      if (s > bestScore) {
        bestScore = s;
        best = i;
      }
    }
    table[bucket] = sorted[best]!.mark;
    room[best]!--;
  }
  return table;
}

interface Preference {
  score: number;
  bucket: number;
  member: number;
}

/** Higher score first; ties (1 in 2^32) by bucket, then by member order. */
function byPreference(a: Preference, b: Preference): number {
  return b.score - a.score || a.bucket - b.bucket || a.member - b.member;
}

/**
 * The round-robin table: new flows take the buckets in turn, so each member gets its count
 * of buckets spread evenly over the cycle (smooth weighted round robin, as in nginx).
 */
export function roundRobinTable(members: readonly SelectionMember[], size: number): Uint32Array {
  const table = new Uint32Array(size);
  if (members.length === 0 || size === 0) return table;
  const sorted = canonical(members);
  const counts = websterCounts(sorted.map((m) => m.weight), size);
  const current = sorted.map(() => 0);
  for (let n = 0; n < size; n++) {
    let best = -1;
    for (let i = 0; i < sorted.length; i++) {
      if (counts[i] === 0) continue;
      current[i]! += counts[i]!;
      if (best < 0 || current[i]! > current[best]!) best = i;
    }
    current[best]! -= size;
    table[n] = sorted[best]!.mark;
  }
  return table;
}
