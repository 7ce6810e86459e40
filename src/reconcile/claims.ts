/**
 * The rules that span farms. Two running farms cannot both hold a dispatch key (VIP,
 * protocol, port: the API refuses it, and a store written otherwise must not break the
 * kernel's transaction), and stateless_dnat recognises a backend's replies by its address,
 * protocol and source port alone, so two farms cannot claim the same ones. The farm with the
 * lower id keeps the claim; the other gets a problem (and no rules).
 *
 * Indexed by VIP (or backend address) and by single port, so judging a farm looks only at the
 * farms whose claims could overlap its own: ten thousand farms on one VIP cost a lookup each.
 */
import type { Protocol } from '../model/farm.js';
import type { DesiredFarm } from './desired.js';

interface Claim {
  protocol: Protocol;
  low: number;
  high: number;
  /** Every port ('*'): the any-port map is keyed by the VIP alone, so it overlaps any other such claim, whatever the protocol. */
  everyPort?: true;
}

interface Claims {
  group: string;
  claims: Claim[];
}

const overlaps = (a: Claim, b: Claim): boolean =>
  (a.protocol === b.protocol || a.protocol === 'all' || b.protocol === 'all' || (a.everyPort === true && b.everyPort === true)) && a.low <= b.high && b.low <= a.high;
const isSingle = (c: Claim): boolean => c.protocol !== 'all' && c.low === c.high;
const singleKey = (c: Claim): string => `${c.protocol}:${c.low}`;

/** Claims (port ranges per protocol) grouped by an address; finds the farms whose claims overlap. */
export class ClaimIndex {
  private readonly groups = new Map<string, { single: Map<string, Set<number>>; wide: Map<number, Claim[]> }>();
  private readonly byFarm = new Map<number, Claims[]>();

  claimsOf(farmId: number): readonly Claims[] {
    return this.byFarm.get(farmId) ?? [];
  }

  set(farmId: number, entries: Claims[]): void {
    this.remove(farmId);
    if (entries.length === 0) return;
    this.byFarm.set(farmId, entries);
    for (const { group, claims } of entries) {
      let g = this.groups.get(group);
      if (!g) this.groups.set(group, (g = { single: new Map(), wide: new Map() }));
      for (const c of claims) {
        if (isSingle(c)) {
          let ids = g.single.get(singleKey(c));
          if (!ids) g.single.set(singleKey(c), (ids = new Set()));
          ids.add(farmId);
        } else {
          const list = g.wide.get(farmId) ?? [];
          list.push(c);
          g.wide.set(farmId, list);
        }
      }
    }
  }

  remove(farmId: number): void {
    for (const { group, claims } of this.byFarm.get(farmId) ?? []) {
      const g = this.groups.get(group);
      if (!g) continue;
      for (const c of claims) {
        if (!isSingle(c)) continue;
        const ids = g.single.get(singleKey(c));
        ids?.delete(farmId);
        if (ids?.size === 0) g.single.delete(singleKey(c));
      }
      g.wide.delete(farmId);
      if (g.single.size === 0 && g.wide.size === 0) this.groups.delete(group);
    }
    this.byFarm.delete(farmId);
  }

  /** The other farms with a claim overlapping one of `entries`, each with the first claim it overlaps. */
  overlapping(farmId: number, entries: readonly Claims[]): Map<number, { group: string; claim: Claim }> {
    const out = new Map<number, { group: string; claim: Claim }>();
    const found = (id: number, group: string, claim: Claim) => {
      if (id !== farmId && !out.has(id)) out.set(id, { group, claim });
    };
    for (const { group, claims } of entries) {
      const g = this.groups.get(group);
      if (!g) continue;
      for (const mine of claims) {
        for (const [id, theirs] of g.wide) if (theirs.some((c) => overlaps(mine, c))) found(id, group, mine);
        if (isSingle(mine)) {
          for (const id of g.single.get(singleKey(mine)) ?? []) found(id, group, mine);
          continue;
        }
        // A range or protocol 'all': the single ports inside it, by lookup when that is cheaper.
        const protocols: Protocol[] = mine.protocol === 'all' ? ['tcp', 'udp', 'sctp'] : [mine.protocol];
        if ((mine.high - mine.low + 1) * protocols.length <= g.single.size) {
          for (const p of protocols) for (let port = mine.low; port <= mine.high; port++) for (const id of g.single.get(`${p}:${port}`) ?? []) found(id, group, mine);
        } else {
          for (const [k, ids] of g.single) {
            const [p, port] = k.split(':') as [Protocol, string];
            if (overlaps(mine, { protocol: p, low: Number(port), high: Number(port) })) for (const id of ids) found(id, group, mine);
          }
        }
      }
    }
    return out;
  }
}

/** A farm's dispatch claims: its VIP, protocol and ports. */
function dispatchClaims(f: DesiredFarm): Claims[] {
  const claims: Claim[] = f.ports === null ? [{ protocol: f.protocol, low: 0, high: 65535, everyPort: true }] : f.ports.map((r) => ({ protocol: f.protocol, ...r }));
  return [{ group: f.vip, claims }];
}

/** The address, protocol and source ports of the replies of a stateless_dnat farm's backends. */
export function replyClaims(f: DesiredFarm): (Claim & { ip: string })[] {
  const ranges = f.ports ?? [{ low: 0, high: 65535 }];
  return f.backends.flatMap((b) =>
    f.protocol === 'all'
      ? [{ ip: b.ip, protocol: f.protocol, low: 0, high: 65535 }]
      : b.port !== null
        ? [{ ip: b.ip, protocol: f.protocol, low: b.port, high: b.port }]
        : ranges.map((r) => ({ ip: b.ip, protocol: f.protocol, low: r.low, high: r.high })),
  );
}

function replyClaimGroups(f: DesiredFarm): Claims[] {
  if (f.nattype !== 'stateless_dnat') return [];
  const byIp = new Map<string, Claim[]>();
  for (const c of replyClaims(f)) byIp.set(c.ip, [...(byIp.get(c.ip) ?? []), { protocol: c.protocol, low: c.low, high: c.high }]);
  return [...byIp].map(([group, claims]) => ({ group, claims }));
}

const range = (c: Claim): string => (c.low === c.high ? `${c.low}` : c.low === 0 && c.high === 65535 ? '*' : `${c.low}:${c.high}`);

/** Dispatch and reply claims of the candidates: running farms without a problem of their own. */
export class FarmClaims {
  private readonly dispatch = new ClaimIndex();
  private readonly replies = new ClaimIndex();
  private readonly names = new Map<number, string>();

  /**
   * Records (or replaces, or with null removes) the farm's claims. Returns the other farms
   * whose claims overlap its old or new ones: their judgement may change.
   */
  set(farm: DesiredFarm | null, farmId = farm?.farmId ?? -1): Set<number> {
    const touched = new Set<number>();
    const collect = (index: ClaimIndex, entries: readonly Claims[]) => {
      for (const id of index.overlapping(farmId, entries).keys()) touched.add(id);
    };
    collect(this.dispatch, this.dispatch.claimsOf(farmId));
    collect(this.replies, this.replies.claimsOf(farmId));
    this.dispatch.remove(farmId);
    this.replies.remove(farmId);
    this.names.delete(farmId);
    if (farm && farm.running && farm.problem === null) {
      const d = dispatchClaims(farm);
      const r = replyClaimGroups(farm);
      collect(this.dispatch, d);
      collect(this.replies, r);
      this.dispatch.set(farmId, d);
      this.replies.set(farmId, r);
      this.names.set(farmId, farm.name);
    }
    return touched;
  }

  /** Why the farm cannot have rules because a candidate with a lower id holds one of its claims, or null. */
  problemOf(farm: DesiredFarm): string | null {
    if (!farm.running || farm.problem !== null) return null;
    const first = (found: Map<number, { group: string; claim: Claim }>) =>
      [...found].filter(([id]) => id < farm.farmId).sort((a, b) => a[0] - b[0])[0];
    const taken = first(this.dispatch.overlapping(farm.farmId, dispatchClaims(farm)));
    if (taken) {
      const [id, { claim }] = taken;
      return `the farm ${this.names.get(id)} already takes ${farm.vip} ${claim.protocol} port ${range(claim)}: two running farms cannot share it`;
    }
    const claimed = first(this.replies.overlapping(farm.farmId, replyClaimGroups(farm)));
    if (claimed) {
      const [id, { group, claim }] = claimed;
      return `backend ${group} (${claim.protocol} ${claim.low}-${claim.high}) already answers for the stateless_dnat farm ${this.names.get(id)}: its replies could not be told apart`;
    }
    return null;
  }
}
