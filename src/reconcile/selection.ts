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

/** How many of each bucket's best preferences the fill looks at before a full scan (at most 8: see the sort keys). */
const PREFERENCES_KEPT = 8;
/** The API's highest weight: a member draws at most this many scores per bucket. */
const MAX_WEIGHT = 9;

/** A backend's draws (one seed per unit of weight), kept: the same backends serve many farms. */
const drawCache = new Map<string, Uint32Array>();
function drawsOf(identity: string): Uint32Array {
  let draws = drawCache.get(identity);
  if (!draws) {
    draws = Uint32Array.from({ length: MAX_WEIGHT }, (_, draw) => fnv1a(`${identity}#${draw}`));
    // Bounded: a cache, not a registry of every backend ever seen.
    if (drawCache.size >= 100_000) drawCache.clear();
    drawCache.set(identity, draws);
  }
  return draws;
}

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
  const owners = assignment(sorted, size);
  for (let bucket = 0; bucket < size; bucket++) table[bucket] = sorted[owners[bucket]!]!.mark;
  return table;
}

/**
 * Which member (index in canonical order) owns each bucket. It depends only on identities and
 * weights, so farms with the same backends share one computation: kept in a bounded cache
 * (10,000 farms of the same four backends compute it once).
 */
const assignments = new Map<string, Uint16Array>();
function assignment(sorted: readonly SelectionMember[], size: number): Uint16Array {
  const key = `${size}|${sorted.map((m) => `${m.identity}*${m.weight}`).join('|')}`;
  let owners = assignments.get(key);
  if (!owners) {
    owners = computeAssignment(sorted, size);
    if (assignments.size >= 4096) assignments.delete(assignments.keys().next().value!);
    assignments.set(key, owners);
  }
  return owners;
}

/**
 * A member's score in every bucket of a table of `size`, for each weight: levels[(w - 1) *
 * size + bucket] is its best of w draws in that bucket. It depends only on the member's
 * identity, so the farms that share a backend share it (10,000 farms with random weights
 * over the same four backends computed it for each of about 5,000 weight shapes: 0.19 s of a
 * cold start). Levels are added when a higher weight asks; bounded like the other caches.
 */
interface ScoreLevels {
  levels: Uint32Array;
  /** Levels computed so far (weights 1..computed). */
  computed: number;
}
const scoreCache = new Map<string, ScoreLevels>();
const saltOf = (bucket: number) => Math.imul(bucket + 1, 0x9e3779b1) >>> 0;

function scoreLevels(identity: string, size: number, weight: number): Uint32Array {
  const key = `${size}|${identity}`;
  let entry = scoreCache.get(key);
  if (!entry) {
    if (scoreCache.size >= 4096) scoreCache.delete(scoreCache.keys().next().value!);
    entry = { levels: new Uint32Array(MAX_WEIGHT * size), computed: 0 };
    scoreCache.set(key, entry);
  }
  if (entry.computed < weight) {
    const draws = drawsOf(identity);
    const { levels } = entry;
    for (let level = entry.computed; level < weight; level++) {
      for (let bucket = 0; bucket < size; bucket++) {
        const draw = mix32(draws[level]! ^ saltOf(bucket));
        const before = level === 0 ? 0 : levels[(level - 1) * size + bucket]!;
        levels[level * size + bucket] = draw > before ? draw : before;
      }
    }
    entry.computed = weight;
  }
  return entry.levels;
}

/** Typed arrays throughout: a cold start computes thousands of these. */
function computeAssignment(sorted: readonly SelectionMember[], size: number): Uint16Array {
  const n = sorted.length;
  const owners = new Uint16Array(size);
  const room = websterCounts(sorted.map((m) => m.weight), size);
  // Member i's score in a bucket: the best of its w draws there (scoreLevels), read at its weight.
  const levels = sorted.map((m) => {
    const w = Math.max(1, Math.min(MAX_WEIGHT, m.weight));
    return { table: scoreLevels(m.identity, size, w), at: (w - 1) * size };
  });
  const score = (i: number, bucket: number): number => levels[i]!.table[levels[i]!.at + bucket]!;
  // Each bucket's best few preferences: (score, member) per slot of `bucket * kept + k`.
  const kept = Math.min(PREFERENCES_KEPT, n);
  const scores = new Float64Array(size * kept);
  const who = new Int32Array(size * kept);
  for (let bucket = 0; bucket < size; bucket++) {
    const at = bucket * kept;
    let filled = 0;
    for (let i = 0; i < n; i++) {
      const s = score(i, bucket);
      // Members come in order, so a later member with an equal score ranks after.
      if (filled === kept && s <= scores[at + kept - 1]!) continue;
      let j = filled < kept ? filled++ : kept - 1;
      while (j > 0 && scores[at + j - 1]! < s) {
        scores[at + j] = scores[at + j - 1]!;
        who[at + j] = who[at + j - 1]!;
        j--;
      }
      scores[at + j] = s;
      who[at + j] = i;
    }
  }
  // All kept preferences, best score first; ties by bucket, then by member order (a bucket's
  // kept preferences are in that order already). One exact number each (under 2^47), sorted
  // natively: (2^32 - 1 - score) x 2^15 + bucket x 2^3 + rank.
  const order = new Float64Array(size * kept);
  for (let k = 0; k < order.length; k++) order[k] = (0xffffffff - scores[k]!) * 32768 + Math.floor(k / kept) * 8 + (k % kept);
  order.sort();
  const filled = new Uint8Array(size);
  for (const key of order) {
    const low = key % 32768;
    const bucket = low >> 3;
    const member = who[bucket * kept + (low & 7)]!;
    if (filled[bucket] || room[member] === 0) continue;
    owners[bucket] = member;
    filled[bucket] = 1;
    room[member]!--;
  }
  // Buckets whose kept preferences were all full (rare): their best member with room.
  for (let bucket = 0; bucket < size; bucket++) {
    if (filled[bucket]) continue;
    let best = -1;
    let bestScore = -1;
    for (let i = 0; i < n; i++) {
      if (room[i] === 0) continue;
      const s = score(i, bucket);
      if (s > bestScore) {
        bestScore = s;
        best = i;
      }
    }
    owners[bucket] = best;
    room[best]!--;
  }
  return owners;
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
