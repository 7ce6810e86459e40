/**
 * DesiredState -> the nftables tables, as data. Pure, so it is tested with golden text that
 * `nft -c` also accepts.
 *
 * Two tables:
 * - `netdev nftfarm`, ingress hooks: every packet to a VIP is dispatched here first, by one
 *   hash lookup on VIP . protocol . port whatever the number of farms (port ranges, then
 *   protocol-'all' farms, have maps of their own). dsr and stateless_dnat farms are served
 *   entirely here (a chain per farm that pins each flow to a backend, rewrites and forwards);
 *   nat and dnat farms are accepted up to the IP stack. What no farm takes is dropped for
 *   announced VIPs.
 * - `ip nftfarm`, nat hooks, for the conntrack modes nat and dnat: a chain per farm picks
 *   the backend of each new connection, conntrack keeps it for the connection's life.
 *
 * The backend choice is the same everywhere: a flow pin (dsr, stateless_dnat) or conntrack
 * (nat, dnat), then the client's session (persistence), then a bucket table: a consistent-hash
 * table shared by the farms of the same shape (see buckets.ts), whose slot answer the
 * table-wide slots map turns into the farm's backend, or the farm's own round-robin sequence.
 * The chosen backend travels as a mark: the packet mark in netdev, the connection mark in the
 * ip table (kept with the connection, so its backend is known to statistics, leastconn and
 * the conntrack flush of a cut backend).
 *
 * Sets are table-wide wherever a key can say which farm it belongs to (backend marks are
 * store-wide, slot marks carry the farm id, flows carry the VIP and port): the kernel finds
 * a set by walking the table's list of sets, so a set per farm makes every load and change
 * slower with each farm. Only sessions and round-robin sequences are per farm.
 */
import {
  ANY_DISPATCH_MAP,
  BACKEND_ADDRESSES_MAP,
  BACKEND_ENDPOINTS_MAP,
  BACKEND_MACS_MAP,
  BACKEND_PORTS_MAP,
  BACKEND_SLOTS_MAP,
  FORWARDED_SET,
  GUARDED_VIPS_SET,
  HASH_SEED,
  INGRESS_PRIORITY,
  MASQUERADED_BACKENDS_SET,
  NAT_FORWARD_CHAIN,
  NAT_POSTROUTING_CHAIN,
  NAT_PREROUTING_CHAIN,
  NAT_TABLE_FAMILY,
  NAT_TABLE_NAME,
  PORT_DISPATCH_MAP,
  RANGE_DISPATCH_MAP,
  REPLY_ANY_DISPATCH_MAP,
  REPLY_DISPATCH_MAP,
  SLOT_BITS,
  SLOT_MARK_BASE,
  TABLE_FAMILY,
  TABLE_NAME,
  SLOT_CHAIN,
  dnatChain,
  farmBucketsMap,
  farmChain,
  farmRepliesChain,
  farmSessionsMap,
  flowKind,
  flowsMap,
  forgetChain,
  ingressChain,
  keepChain,
  pickChain,
  pinChain,
  rewriteChain,
  sendChain,
  sharedTableMap,
  slotMark,
} from './names.js';
import { BUCKETS, fnv1a, normalizedMembers, rendezvousTable, roundRobinSequence, type RoundRobinMember, type TableMember } from './buckets.js';
import { parseIPv4 } from '../dataplane/netlink/ipv4.js';
import { singlePortOf } from '../model/ports.js';
import { replyClaims, usesConntrack, type DesiredBackend, type DesiredFarm, type DesiredState } from './desired.js';
import { countNewFlow, forwardedSet, newFlowsSet } from './counting.js';
import { reuseUnchanged, type ChainDecl, type SetDecl, type TableDecl } from '../dataplane/nft/ruleset.js';
import type { Persistence, Protocol } from '../model/farm.js';

/** Flow pins outlive idle periods of this length (IPVS's defaults: tcp 15 min, udp 5 min). */
export const FLOW_TIMEOUT_SECONDS: Record<Protocol, number> = { tcp: 900, udp: 300, sctp: 900, all: 300 };
/**
 * Entries a flow map (one per protocol, shared by all farms) or a session map may hold. When
 * full, new flows are still balanced by the table, only not pinned (the `update` fails in a
 * rule of its own and the next rule runs). NFTFARM_FLOW_MAP_SIZE overrides it (tests fill a
 * small map).
 */
export const FLOW_MAP_SIZE = flowMapSize(process.env.NFTFARM_FLOW_MAP_SIZE);

function flowMapSize(text: string | undefined): number {
  const n = Number(text);
  return text && Number.isInteger(n) && n >= 16 && n <= 16_777_216 ? n : 4_194_304;
}

const hex = (n: number): string => `0x${n.toString(16).padStart(8, '0')}`;
const SEED_TEXT = hex(HASH_SEED);

/** The farms that get rules: started, supported, with an interface for their VIP. */
export function renderedFarms(state: DesiredState): DesiredFarm[] {
  return state.farms.filter((f) => f.running && f.problem === null).sort((a, b) => a.farmId - b.farmId);
}

interface SharedTable {
  name: string;
  members: TableMember[];
}

/** What a farm puts into the table-wide maps, as [key, value] element text. */
interface Contributions {
  slots: [string, string][];
  macs: [string, string][];
  addresses: [string, string][];
  ports: [string, string][];
  endpoints: [string, string][];
}

interface FarmObjects {
  /** The farm's own sets (sessions, a round-robin sequence). */
  sets: SetDecl[];
  chains: ChainDecl[];
  /** The stage chains it jumps to (shared with other farms: the same name, the same chain). */
  stages: ChainDecl[];
  sharedTable: SharedTable | null;
  contributions: Contributions;
}

/**
 * Rendered farm objects by farm id, with the inputs they were rendered from, the shared
 * tables and the table-wide maps by name. A pass renders again only the farms whose inputs
 * changed, and hands the others' objects over unchanged; a table-wide map with the same
 * elements as last time is the same object: the transaction planner skips what it saw last
 * time without comparing elements.
 */
export interface RenderCache {
  farms: Map<number, { key: string } & FarmObjects>;
  tables: Map<string, SetDecl>;
  maps: Map<string, SetDecl>;
}

export const newRenderCache = (): RenderCache => ({ farms: new Map(), tables: new Map(), maps: new Map() });

export interface RenderedTables {
  /** `netdev nftfarm`; null when no farm needs rules. */
  netdev: TableDecl | null;
  /** `ip nftfarm`; null when no nat or dnat farm needs rules. */
  ip: TableDecl | null;
}

/** The netdev table alone (the DSR view of the data plane, kept for callers that need only it). */
export function renderTable(state: DesiredState, cache: RenderCache = newRenderCache()): TableDecl | null {
  return renderTables(state, cache).netdev;
}

export function renderTables(state: DesiredState, cache: RenderCache = newRenderCache()): RenderedTables {
  const farms = renderedFarms(state);
  if (farms.length === 0) {
    cache.farms.clear();
    cache.tables.clear();
    return { netdev: null, ip: null };
  }
  const objects = new Map<number, FarmObjects>();
  for (const farm of farms) {
    // Everything the farm's objects are made of; the generation alone changes nothing.
    const key = JSON.stringify({ ...farm, generation: 0 });
    let entry = cache.farms.get(farm.farmId);
    if (!entry || entry.key !== key) {
      entry = { key, ...renderFarm(farm) };
      cache.farms.set(farm.farmId, entry);
    }
    objects.set(farm.farmId, entry);
  }
  for (const id of cache.farms.keys()) if (!objects.has(id)) cache.farms.delete(id);
  const used = new Set([...objects.values()].flatMap((o) => (o.sharedTable ? [o.sharedTable.name] : [])));
  for (const name of cache.tables.keys()) if (!used.has(name)) cache.tables.delete(name);

  // Counted sets of every rendered backend (marks are store-wide): the same object in both
  // tables and from pass to pass while the backends do not change.
  const counted = { newFlows: newFlowsSet(farms, cache.maps), forwarded: forwardedSet(farms, cache.maps) };
  const natFarms = farms.filter((f) => usesConntrack(f.nattype));
  const netdevFarms = farms.filter((f) => !usesConntrack(f.nattype));
  const netdev = renderNetdevTable(state, farms, netdevFarms, objects, cache, counted.newFlows);
  const ip = natFarms.length === 0 ? null : renderNatTable(natFarms, objects, cache, counted);
  return { netdev, ip };
}

interface Dispatch {
  ports: Map<string, string>;
  ranges: Map<string, string>;
  any: Map<string, string>;
}

function dispatchOf(farms: DesiredFarm[], verdictOf: (farm: DesiredFarm) => string): Dispatch {
  const d: Dispatch = { ports: new Map(), ranges: new Map(), any: new Map() };
  for (const farm of [...farms].sort((a, b) => ipOrder(a.vip, b.vip) || a.farmId - b.farmId)) {
    const verdict = verdictOf(farm);
    if (farm.ports === null) {
      d.any.set(farm.vip, verdict);
      continue;
    }
    for (const r of farm.ports) {
      if (r.low === r.high) d.ports.set(`${farm.vip} . ${farm.protocol} . ${r.low}`, verdict);
      else d.ranges.set(`${farm.vip} . ${farm.protocol} . ${r.low}-${r.high}`, verdict);
    }
  }
  return d;
}

function dispatchMaps(d: Dispatch): SetDecl[] {
  return [
    {
      kind: 'map',
      name: PORT_DISPATCH_MAP,
      body: ['type ipv4_addr . inet_proto . inet_service : verdict'],
      typeKey: 'ipv4_addr . inet_proto . inet_service : verdict',
      elements: d.ports,
    },
    {
      kind: 'map',
      name: RANGE_DISPATCH_MAP,
      body: ['type ipv4_addr . inet_proto . inet_service : verdict', 'flags interval'],
      typeKey: 'ipv4_addr . inet_proto . inet_service : verdict',
      elements: d.ranges,
    },
    { kind: 'map', name: ANY_DISPATCH_MAP, body: ['type ipv4_addr : verdict'], typeKey: 'ipv4_addr : verdict', elements: d.any },
  ];
}

/**
 * A table-wide static map of the farms' contributions, sorted by numeric key. The same object
 * as last pass when its elements did not change.
 */
function tableWideMap(
  cache: RenderCache,
  family: string,
  name: string,
  type: string,
  farms: DesiredFarm[],
  objects: Map<number, FarmObjects>,
  pick: (c: Contributions) => [string, string][],
  extraBody: string[] = [],
): SetDecl {
  const entries = farms.flatMap((f) => pick(objects.get(f.farmId)!.contributions));
  entries.sort((a, b) => Number(a[0]) - Number(b[0]));
  return reuseUnchanged(cache.maps, `${family} ${name}`, { kind: 'map', name, body: [`type ${type}`, ...extraBody], typeKey: type, elements: new Map(entries) });
}

/** The consistent-hash tables the farms use, each once, by name. Computed once, kept while used. */
function sharedTables(farms: DesiredFarm[], objects: Map<number, FarmObjects>, cache: RenderCache): SetDecl[] {
  const shared = new Map<string, SharedTable>();
  for (const f of farms) {
    const t = objects.get(f.farmId)!.sharedTable;
    if (t) shared.set(t.name, t);
  }
  return [...shared.values()]
    .sort((a, b) => (a.name < b.name ? -1 : 1))
    .map((t) => {
      let decl = cache.tables.get(t.name);
      if (!decl) {
        const buckets = rendezvousTable(t.members, BUCKETS);
        decl = {
          kind: 'map',
          name: t.name,
          body: [`typeof numgen inc mod ${BUCKETS} : meta mark`],
          typeKey: 'integer : mark',
          elements: new Map(buckets.map((slot, bucket) => [String(bucket), String(SLOT_MARK_BASE + slot)])),
        };
        cache.tables.set(t.name, decl);
      }
      return decl;
    });
}

/** The farms' own sets and chains, after the stage chains they use (each once, by name). */
function ownObjects(farms: DesiredFarm[], objects: Map<number, FarmObjects>): { sets: SetDecl[]; chains: ChainDecl[] } {
  const stages = new Map<string, ChainDecl>();
  for (const f of farms) for (const c of objects.get(f.farmId)!.stages) if (!stages.has(c.name)) stages.set(c.name, c);
  return {
    sets: farms.flatMap((f) => objects.get(f.farmId)!.sets),
    chains: [...[...stages.values()].sort((a, b) => (a.name < b.name ? -1 : 1)), ...farms.flatMap((f) => objects.get(f.farmId)!.chains)],
  };
}

function renderNetdevTable(
  state: DesiredState,
  farms: DesiredFarm[],
  netdevFarms: DesiredFarm[],
  objects: Map<number, FarmObjects>,
  cache: RenderCache,
  newFlows: SetDecl,
): TableDecl {
  // nat and dnat farms are only let through here: their rules are in the ip table.
  const dispatch = dispatchOf(farms, (farm) => (usesConntrack(farm.nattype) ? 'accept' : `jump ${farmChain(farm.farmId)}`));
  const guarded = new Map(state.announcements.map((a) => [a.vip, '']));

  const stateless = farms.filter((f) => f.nattype === 'stateless_dnat');
  const replies = new Map<string, string>();
  const anyReplies = new Map<string, string>();
  for (const farm of stateless) {
    const verdict = `jump ${farmRepliesChain(farm.farmId)}`;
    for (const c of replyClaims(farm)) {
      if (c.protocol === 'all') anyReplies.set(c.ip, verdict);
      else replies.set(`${c.ip} . ${c.protocol} . ${c.low === c.high ? c.low : `${c.low}-${c.high}`}`, verdict);
    }
  }
  const wide = (name: string, type: string, pick: (c: Contributions) => [string, string][], extra: string[] = []) =>
    tableWideMap(cache, TABLE_FAMILY, name, type, netdevFarms, objects, pick, extra);

  const sets: SetDecl[] = [
    ...dispatchMaps(dispatch),
    { kind: 'set', name: GUARDED_VIPS_SET, body: ['type ipv4_addr'], typeKey: 'ipv4_addr', elements: guarded },
    newFlows,
    wide(BACKEND_SLOTS_MAP, 'mark : mark', (c) => c.slots),
    wide(BACKEND_MACS_MAP, 'mark : ether_addr', (c) => c.macs, ['counter']),
    wide(BACKEND_ADDRESSES_MAP, 'mark : ipv4_addr', (c) => c.addresses),
    wide(BACKEND_PORTS_MAP, 'mark : inet_service', (c) => c.ports),
    ...(['tcp', 'udp', 'sctp', 'all'] as const).map((p) => dynamicMap(flowsMap(p), FLOW_KEYS[p === 'all' ? 'all' : 'ports'].type, FLOW_TIMEOUT_SECONDS[p])),
  ];
  if (stateless.length > 0) {
    sets.push(
      {
        kind: 'map',
        name: REPLY_DISPATCH_MAP,
        body: ['type ipv4_addr . inet_proto . inet_service : verdict', 'flags interval'],
        typeKey: 'ipv4_addr . inet_proto . inet_service : verdict',
        elements: sortedByIp(replies),
      },
      { kind: 'map', name: REPLY_ANY_DISPATCH_MAP, body: ['type ipv4_addr : verdict'], typeKey: 'ipv4_addr : verdict', elements: sortedByIp(anyReplies) },
    );
  }
  const chains: ChainDecl[] = [];

  const interfaces = new Map(farms.map((f) => [f.iface!.name, f.iface!]));
  for (const iface of [...interfaces.values()].sort((a, b) => (a.name < b.name ? -1 : 1))) {
    const servesReplies = stateless.some((f) => f.iface!.name === iface.name);
    chains.push({
      name: ingressChain(iface.name, iface.index),
      hook: `type filter hook ingress device "${iface.name}" priority ${INGRESS_PRIORITY}; policy accept;`,
      rules: [
        // Only frames addressed to this host (not flooded ones); non-first fragments carry no ports.
        `meta pkttype host ip frag-off & 0x1fff == 0 ip daddr . meta l4proto . th dport vmap @${PORT_DISPATCH_MAP}`,
        `meta pkttype host ip frag-off & 0x1fff == 0 ip daddr . meta l4proto . th dport vmap @${RANGE_DISPATCH_MAP}`,
        `meta pkttype host ip daddr vmap @${ANY_DISPATCH_MAP}`,
        // stateless_dnat: the backends' replies, routed through this host, get the VIP back.
        ...(servesReplies
          ? [
              `meta pkttype host ip frag-off & 0x1fff == 0 ip saddr . meta l4proto . th sport vmap @${REPLY_DISPATCH_MAP}`,
              `meta pkttype host ip saddr vmap @${REPLY_ANY_DISPATCH_MAP}`,
            ]
          : []),
        // Forwarding is on for proxy ARP: traffic to a VIP that no farm takes would loop.
        `meta pkttype host ip daddr @${GUARDED_VIPS_SET} counter drop`,
      ],
    });
  }

  const own = ownObjects(netdevFarms, objects);
  return { family: TABLE_FAMILY, name: TABLE_NAME, sets: [...sets, ...sharedTables(netdevFarms, objects, cache), ...own.sets], chains: [...chains, ...own.chains] };
}

function renderNatTable(farms: DesiredFarm[], objects: Map<number, FarmObjects>, cache: RenderCache, counted: { newFlows: SetDecl; forwarded: SetDecl }): TableDecl {
  const dispatch = dispatchOf(farms, (farm) => `jump ${farmChain(farm.farmId)}`);
  const masqueraded = new Map(
    farms
      .filter((f) => f.nattype === 'nat')
      .flatMap((f) => f.backends.map((b) => b.uid))
      .sort((a, b) => a - b)
      .map((uid) => [String(uid), '']),
  );
  const wide = (name: string, type: string, pick: (c: Contributions) => [string, string][]) =>
    tableWideMap(cache, NAT_TABLE_FAMILY, name, type, farms, objects, pick);
  const sets: SetDecl[] = [
    ...dispatchMaps(dispatch),
    { kind: 'set', name: MASQUERADED_BACKENDS_SET, body: ['type mark'], typeKey: 'mark', elements: masqueraded },
    counted.newFlows,
    counted.forwarded,
    wide(BACKEND_SLOTS_MAP, 'mark : mark', (c) => c.slots),
    wide(BACKEND_ADDRESSES_MAP, 'mark : ipv4_addr', (c) => c.addresses),
    wide(BACKEND_ENDPOINTS_MAP, 'mark : ipv4_addr . inet_service', (c) => c.endpoints),
  ];
  const chains: ChainDecl[] = [
    {
      name: NAT_PREROUTING_CHAIN,
      hook: 'type nat hook prerouting priority dstnat; policy accept;',
      rules: [
        // conntrack has reassembled fragments here, and only a connection's first packet comes.
        `ip daddr . meta l4proto . th dport vmap @${PORT_DISPATCH_MAP}`,
        `ip daddr . meta l4proto . th dport vmap @${RANGE_DISPATCH_MAP}`,
        `ip daddr vmap @${ANY_DISPATCH_MAP}`,
      ],
    },
    {
      name: NAT_POSTROUTING_CHAIN,
      hook: 'type nat hook postrouting priority srcnat; policy accept;',
      // nat (source NAT): the backend answers this host, which needs no route on the backends.
      rules: [`ct status dnat ct mark @${MASQUERADED_BACKENDS_SET} masquerade`],
    },
    {
      name: NAT_FORWARD_CHAIN,
      hook: 'type filter hook forward priority filter; policy accept;',
      // Every packet to a backend, by its connection's mark (statistics; under the nat chains
      // only the first packet of a connection passes).
      rules: [`ct direction original ct mark @${FORWARDED_SET}`],
    },
  ];
  const own = ownObjects(farms, objects);
  return { family: NAT_TABLE_FAMILY, name: NAT_TABLE_NAME, sets: [...sets, ...sharedTables(farms, objects, cache), ...own.sets], chains: [...chains, ...own.chains] };
}

interface FlowKey {
  expr: string;
  type: string;
}


/**
 * What identifies one flow: every packet of a TCP connection or UDP flow maps to it, and it
 * names the VIP and virtual port, so one map per protocol serves every farm. Protocol 'all'
 * also carries ICMP and others without ports: pinned by addresses.
 */
const FLOW_KEYS: Record<'ports' | 'all', FlowKey> = {
  ports: { expr: 'ip saddr . ip daddr . th sport . th dport', type: 'ipv4_addr . ipv4_addr . inet_service . inet_service' },
  all: { expr: 'ip saddr . ip daddr', type: 'ipv4_addr . ipv4_addr' },
};

export const SESSION_KEYS: Record<Exclude<Persistence, ''>, FlowKey> = {
  srcip: { expr: 'ip saddr', type: 'ipv4_addr' },
  srcport: { expr: 'th sport', type: 'inet_service' },
  srcmac: { expr: 'ether saddr', type: 'ether_addr' },
  srcip_srcport: { expr: 'ip saddr . th sport', type: 'ipv4_addr . inet_service' },
  srcip_dstport: { expr: 'ip saddr . th dport', type: 'ipv4_addr . inet_service' },
};

/** What a new flow is hashed on, and a short name for it (stage chain names). */
function hashInput(farm: DesiredFarm): { expr: string; kind: string } {
  const ports = farm.protocol !== 'all';
  switch (farm.algorithm) {
    case 'hash_srcip':
      return { expr: 'ip saddr', kind: 'srcip' };
    case 'hash_srcip_srcport':
      return ports ? { expr: 'ip saddr . th sport', kind: 'srcip_sport' } : { expr: 'ip saddr', kind: 'srcip' };
    default:
      // weight, leastconn where connections are not counted (dsr, stateless_dnat), and
      // symhash: the load balancer chooses on one direction only, so a flow hash is as
      // symmetric as it needs to be, and unlike nft's symhash it has a fixed seed.
      return ports ? { expr: 'ip saddr . ip daddr . th sport . th dport', kind: 'flow' } : { expr: 'ip saddr . ip daddr', kind: 'addresses' };
  }
}

const memberOf = (b: DesiredBackend): RoundRobinMember => ({ key: `${b.ip}:${b.port ?? ''}`, weight: b.weight, value: b.uid });

/**
 * How the farm picks a backend for a new flow: `own` is a per-farm sequence of backend marks
 * walked by a counter (roundrobin, leastconn where connections are counted); `shared` is a
 * consistent-hash table of slots, shared with the farms of the same shape.
 */
type BucketChoice =
  | { kind: 'own'; size: number; buckets: number[]; selector: string }
  | { kind: 'shared'; table: SharedTable; input: { expr: string; kind: string }; slots: [string, string][] }
  | { kind: 'none' };

function bucketChoice(farm: DesiredFarm): BucketChoice {
  const serving = farm.backends.filter((b) => b.role === 'serving');
  if (serving.length === 0) return { kind: 'none' };
  if (farm.algorithm === 'roundrobin' || (farm.algorithm === 'leastconn' && usesConntrack(farm.nattype))) {
    let members = serving;
    if (farm.algorithm === 'leastconn') {
      // The backends with the fewest connections per unit of weight, counted every second;
      // new flows go to them in weighted turn until the next count.
      const load = (b: DesiredBackend) => (b.connections ?? 0) / Math.max(1, b.weight);
      const least = Math.min(...serving.map(load));
      members = serving.filter((b) => load(b) === least);
    }
    const buckets = roundRobinSequence(members.map(memberOf));
    return { kind: 'own', size: buckets.length, buckets, selector: `numgen inc mod ${buckets.length}` };
  }
  const members = normalizedMembers(serving.map((b) => ({ slot: b.id, weight: b.weight })));
  const shape = members.map((m) => `${m.slot}:${m.weight}`).join(',');
  const hash = `${fnv1a(shape).toString(16).padStart(8, '0')}${fnv1a(shape, 0x01234567).toString(16).padStart(8, '0')}`;
  return {
    kind: 'shared',
    table: { name: sharedTableMap(hash), members },
    input: hashInput(farm),
    slots: [...serving].sort((a, b) => a.id - b.id).map((b) => [String(slotMark(farm.farmId, b.id)), String(b.uid)]),
  };
}

/** The map(s), rules and stage chains that give a new flow its backend, in `mark`. */
function selection(farm: DesiredFarm, mark: 'meta mark' | 'ct mark'): { sets: SetDecl[]; rules: string[]; stages: ChainDecl[]; choice: BucketChoice } {
  const id = farm.farmId;
  const choice = bucketChoice(farm);
  if (choice.kind === 'none') return { sets: [], rules: [], stages: [], choice };
  if (choice.kind === 'own') {
    return {
      sets: [
        {
          kind: 'map',
          name: farmBucketsMap(id),
          body: [`typeof numgen inc mod ${choice.size} : meta mark`],
          typeKey: 'integer : mark',
          elements: new Map(choice.buckets.map((uid, bucket) => [String(bucket), String(uid)])),
        },
      ],
      rules: [`${mark} 0 ${mark} set ${choice.selector} map @${farmBucketsMap(id)}${countNewFlow(mark)}`],
      stages: [],
      choice,
    };
  }
  const pick = pickChain(choice.table.name, choice.input.kind);
  return {
    sets: [],
    rules: [
      `${mark} 0 jump ${pick}`,
      // The shared table answers a slot; with the farm's id it names this farm's backend.
      `${mark} >= ${hex(SLOT_MARK_BASE)} ${mark} set ${mark} | ${hex(farm.farmId * 2 ** SLOT_BITS)} jump ${SLOT_CHAIN}`,
    ],
    stages: [
      { name: pick, rules: [`${mark} set jhash ${choice.input.expr} mod ${BUCKETS} seed ${SEED_TEXT} map @${choice.table.name}`] },
      // A backend chosen here starts a flow: counted per backend (counting.ts).
      { name: SLOT_CHAIN, rules: [`${mark} set ${mark} map @${BACKEND_SLOTS_MAP}${countNewFlow(mark)}`] },
    ],
    choice,
  };
}

function renderFarm(farm: DesiredFarm): FarmObjects {
  const id = farm.farmId;
  // Who may still receive packets: everyone but the excluded (cut, unreachable).
  const reachable = farm.backends.filter((b) => b.role !== 'excluded').sort((a, b) => a.uid - b.uid);
  const nat = usesConntrack(farm.nattype);
  const select = selection(farm, nat ? 'ct mark' : 'meta mark');
  const contributions: Contributions = {
    slots: select.choice.kind === 'shared' ? select.choice.slots : [],
    macs: [],
    addresses: [],
    ports: [],
    endpoints: [],
  };
  const sharedTable = select.choice.kind === 'shared' ? select.choice.table : null;
  const sets: SetDecl[] = [...select.sets];
  const stages: ChainDecl[] = [...select.stages];
  const session = farm.persistence === '' ? null : { ...SESSION_KEYS[farm.persistence], map: farmSessionsMap(id) };
  if (session) sets.push(dynamicMap(session.map, session.type, farm.ttl));

  if (nat) {
    const withPort = farm.protocol === 'all' ? [] : reachable.filter((b) => b.port !== null);
    const withoutPort = reachable.filter((b) => !withPort.includes(b));
    contributions.addresses = withoutPort.map((b) => [String(b.uid), b.ip]);
    contributions.endpoints = withPort.map((b) => [String(b.uid), `${b.ip} . ${b.port}`]);
    stages.push({
      name: dnatChain(farm.protocol),
      // A map miss ends a rule: backends with a port of their own first, then the others.
      rules: [
        ...(farm.protocol === 'all' ? [] : [`meta l4proto ${farm.protocol} dnat ip addr . port to ct mark map @${BACKEND_ENDPOINTS_MAP}`]),
        `dnat ip to ct mark map @${BACKEND_ADDRESSES_MAP}`,
      ],
    });
    const rules = [
      // The connection mark carries the chosen backend and stays with the connection.
      'ct mark set 0',
      ...(session ? [`ct mark set ${session.expr} map @${session.map}${countNewFlow('ct mark')}`] : []),
      ...select.rules,
      ...(session ? [`ct mark != 0 update @${session.map} { ${session.expr} : ct mark }`] : []),
      `jump ${dnatChain(farm.protocol)}`,
      // Reached only when the session's backend is gone (cut, removed): forget the session,
      // or the client's every retry would refresh it and be dropped again.
      ...(session ? [`delete @${session.map} { ${session.expr} : ct mark }`] : []),
      `counter drop comment "farm ${farm.name}: no backend"`,
    ];
    return { sets, chains: [{ name: farmChain(id), rules }], stages, sharedTable, contributions };
  }

  const iface = farm.iface!;
  // Frames go to the backends' MAC addresses: those not known yet cannot receive any.
  const sendable = reachable.filter((b) => b.mac !== null);
  contributions.macs = sendable.map((b) => [String(b.uid), b.mac as string]);
  const stateless = farm.nattype === 'stateless_dnat';
  if (stateless) {
    contributions.addresses = sendable.map((b) => [String(b.uid), b.ip]);
    contributions.ports = sendable.filter((b) => b.port !== null).map((b) => [String(b.uid), String(b.port)]);
  }
  const kind = flowKind(farm.protocol);
  const flow = FLOW_KEYS[farm.protocol === 'all' ? 'all' : 'ports'].expr;
  const flows = flowsMap(farm.protocol);
  stages.push(
    {
      name: pinChain(kind),
      rules: [
        // A SYN starts a new connection: a pin left by an earlier connection on the same ports
        // (pins outlive connections) must not send it to that backend, which may be down or drained.
        ...(farm.protocol === 'tcp' ? [`tcp flags & (fin | syn | rst | ack) == syn delete @${flows} { ${flow} : meta mark }`] : []),
        `meta mark set ${flow} map @${flows}`,
      ],
    },
    // In a chain of its own: when the map is full the update ends only this rule.
    { name: keepChain(kind), rules: [`update @${flows} { ${flow} : meta mark }`] },
    { name: forgetChain(kind), rules: [`delete @${flows} { ${flow} : meta mark }`] },
    {
      name: sendChain(iface.name, iface.index),
      // Our MAC as source, or the switch learns the client's MAC here.
      rules: [`ether saddr set ${iface.mac} ether daddr set meta mark map @${BACKEND_MACS_MAP} fwd to "${iface.name}"`],
      // `fwd to` is bound to the interface index when loaded: a re-created interface needs a reload.
      signature: `fwd ${iface.name}#${iface.index}`,
    },
  );
  if (stateless) {
    stages.push({
      name: rewriteChain(farm.protocol),
      // The backend's address (and port, for backends that have one) replace the VIP's; nft fixes the checksums.
      rules: [
        `ip daddr set meta mark map @${BACKEND_ADDRESSES_MAP}`,
        ...(farm.protocol === 'tcp' || farm.protocol === 'udp' ? [`${farm.protocol} dport set meta mark map @${BACKEND_PORTS_MAP}`] : []),
      ],
    });
  }
  const rules = [
    // The mark carries the chosen backend; a map miss leaves it as it was, so start from 0.
    'meta mark set 0',
    `jump ${pinChain(kind)}`,
    ...(session ? [`meta mark 0 meta mark set ${session.expr} map @${session.map}${countNewFlow('meta mark')}`] : []),
    ...select.rules,
    `meta mark != 0 jump ${keepChain(kind)}`,
    ...(session ? [`meta mark != 0 update @${session.map} { ${session.expr} : meta mark }`] : []),
    ...(stateless ? [`jump ${rewriteChain(farm.protocol)}`] : []),
    `jump ${sendChain(iface.name, iface.index)}`,
    // Reached only when the pinned backend is gone (cut, removed): forget the pin so the
    // client's next attempt is balanced again, and never let the packet reach our own stack.
    `jump ${forgetChain(kind)}`,
    ...(session ? [`delete @${session.map} { ${session.expr} : meta mark }`] : []),
    `counter drop comment "farm ${farm.name}: no backend"`,
  ];
  const chains: ChainDecl[] = [{ name: farmChain(id), rules }];
  if (stateless) {
    const single = singlePortOf(farm.ports === null ? { any: true } : { any: false, ranges: farm.ports });
    const rewritesPort = farm.protocol !== 'all' && sendable.some((b) => b.port !== null);
    const restorePort = rewritesPort && single !== null ? ` ${farm.protocol} sport set ${single}` : '';
    chains.push({
      name: farmRepliesChain(id),
      // Back to the VIP, then the kernel routes the reply to the client (forwarding is on).
      rules: [`ip saddr set ${farm.vip}${restorePort} accept`],
    });
  }
  return { sets, chains, stages, sharedTable, contributions };
}

function dynamicMap(name: string, keyType: string, timeoutSeconds: number): SetDecl {
  return {
    kind: 'map',
    name,
    body: [`type ${keyType} : mark`, `size ${FLOW_MAP_SIZE}`, 'flags dynamic,timeout', `timeout ${timeoutSeconds}s`],
    typeKey: `${keyType} : mark`,
    elements: null,
  };
}

function sortedByIp(m: Map<string, string>): Map<string, string> {
  return new Map([...m].sort(([a], [b]) => ipOrder(a.split(' ')[0]!, b.split(' ')[0]!) || (a < b ? -1 : a > b ? 1 : 0)));
}

/** Numeric address order (every address here is a valid dotted quad). */
const ipOrder = (a: string, b: string): number => parseIPv4(a)! - parseIPv4(b)!;
