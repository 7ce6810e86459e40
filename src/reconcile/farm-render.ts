/**
 * One farm's kernel objects: DesiredFarm -> FarmObjects. Pure, so a pass renders only the
 * farms that changed, and the planner compares a farm's objects with what it applied before.
 *
 * A farm owns little: its chain (a few rules that jump to shared stage chains), its
 * stateless_dnat replies chain, its persistence sessions map, and elements of the table-wide
 * maps: dispatch keys, its selection region, its backends' MACs, addresses and ports, and
 * counter slots. Everything that reads or writes a table-wide map sits in a stage chain
 * shared by the farms (the kernel checks each element added to a map against every rule bound
 * to it, so rules in 10,000 farm chains bound to one map made loads quadratic).
 *
 * The backend choice: a flow pin (dsr, stateless_dnat) or conntrack (nat, dnat), then the
 * client's session (persistence), then the farm's selection region: the farm's rule writes a
 * bucket key (a hash of the flow, or a round-robin counter, offset into its region) and the
 * selection map turns it into a backend mark (selection.ts). The chosen backend travels as a
 * mark: the packet mark in netdev, the connection mark in the ip table (kept with the
 * connection, so its backend is known to statistics, leastconn and the flush of a cut backend).
 */
import type { Persistence, Protocol } from '../model/farm.js';
import { singlePortOf } from '../model/ports.js';
import type { ChainDecl, Element, SetDecl, TableName } from '../dataplane/nft/objects.js';
import { usesConntrack, type DesiredBackend, type DesiredFarm, type VipInterface } from './desired.js';
import { replyClaims } from './claims.js';
import { consistentTable, roundRobinTable, type SelectionMember } from './selection.js';
import { isIpv6Text } from '../model/ip.js';
import {
  ANY_DISPATCH_MAP,
  ANY_DISPATCH_MAP6,
  BACKEND_ADDRESSES_MAP,
  BACKEND_ADDRESSES_MAP6,
  BACKEND_ENDPOINTS_MAP,
  BACKEND_ENDPOINTS_MAP6,
  BACKEND_MACS_MAP,
  BACKEND_PORTS_MAP,
  COUNT_DROP_CHAIN,
  FARM_DROPS_SET,
  FORWARDED_SET,
  GUARDED_VIPS_SET,
  GUARDED_VIPS_SET6,
  HASH_SEED,
  MASQUERADED_BACKENDS_SET,
  NEW_FLOWS_SET,
  PORT_DISPATCH_MAP,
  PORT_DISPATCH_MAP6,
  RANGE_DISPATCH_MAP,
  RANGE_DISPATCH_MAP6,
  REPLY_ANY_DISPATCH_MAP,
  REPLY_ANY_DISPATCH_MAP6,
  REPLY_DISPATCH_MAP,
  REPLY_PORT_DISPATCH_MAP,
  REPLY_DISPATCH_MAP6,
  REPLY_PORT_DISPATCH_MAP6,
  SELECTION_BASE,
  SELECTION_MAP,
  countNewFlowChain,
  dnatChain,
  farmChain,
  farmRepliesChain,
  farmSessionsMap,
  flowKind,
  flowsMap,
  pinChain,
  regionBase,
  selectChain,
  sendChain,
  serveChain,
} from './names.js';

/** Flow pins outlive idle periods of this length (IPVS's defaults: tcp 15 min, udp 5 min). */
export const FLOW_TIMEOUT_SECONDS: Record<Protocol, number> = { tcp: 900, udp: 300, sctp: 900, all: 300 };
/**
 * Entries a flow map (one per protocol, shared by all farms) or a session map may hold. When
 * full, new flows are still balanced, only not pinned (the `update` fails in a rule of its
 * own and the next rule runs). NFTFARM_FLOW_MAP_SIZE overrides it (tests fill a small map).
 */
export const FLOW_MAP_SIZE = flowMapSize(process.env.NFTFARM_FLOW_MAP_SIZE);

function flowMapSize(text: string | undefined): number {
  const n = Number(text);
  return text && Number.isInteger(n) && n >= 16 && n <= 16_777_216 ? n : 4_194_304;
}

const hex = (n: number): string => `0x${n.toString(16).padStart(8, '0')}`;
const SEED = hex(HASH_SEED);
const SELECTION_KEY = hex(SELECTION_BASE);

/** An element of a table-wide set or map, contributed by a farm. */
export interface Contribution extends Element {
  table: TableName;
  set: string;
}

/** The farm's bucket keys, from `base`: marks[i] is the backend of bucket base + i (0: none). */
export interface Region {
  table: TableName;
  base: number;
  marks: Uint32Array;
}

/** A netdev ingress chain the farm needs on its VIP's interface. */
export interface IngressNeed {
  iface: VipInterface;
  /** stateless_dnat: the chain also dispatches the backends' replies. */
  replies: boolean;
}

export interface FarmObjects {
  farmId: number;
  /** Its own chains and sets (named after its slot). */
  chains: { table: TableName; chain: ChainDecl }[];
  sets: { table: TableName; set: SetDecl }[];
  /** The stage chains it jumps to: shared, so the same name always has the same content. */
  stages: { table: TableName; chain: ChainDecl }[];
  /** Its elements of the table-wide maps (each key its own, but VIP guards, which farms share). */
  elements: Contribution[];
  region: Region | null;
  ingress: IngressNeed;
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
export const FLOW_KEYS: Record<'ports' | 'all', FlowKey> = {
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

/**
 * The IPv6 flow keys. nft 1.0.6 writes (`update`, `delete`) map elements whose key holds an
 * IPv6 address beside other fields wrongly: the data register overlaps the key (seen: a pin
 * of fd00::1 stored as fd00::700:0:0:1, so every packet missed), or it asserts ("dreg <
 * ctx->reg_low") for two addresses. So an IPv6 flow is keyed by its ports and a 32-bit hash
 * of its two addresses, carried in the packet's priority (skb->priority, reset to 0 before
 * the frame is sent): two live flows share a pin only with the same ports and colliding
 * address hashes (1 in 2^32).
 */
export const FLOW_KEYS6: Record<'ports' | 'all', FlowKey> = {
  ports: { expr: 'th sport . th dport . meta priority', type: 'inet_service . inet_service . classid' },
  all: { expr: 'meta priority', type: 'classid' },
};

/** What the IPv6 flow key's priority hashes: the flow's addresses (the VIP included). */
export const FLOW_ADDRESSES6 = 'ip6 saddr . ip6 daddr';

/** Persistence keys with an IPv6 address and a port are refused for IPv6 farms (FLOW_KEYS6, ipv6FarmProblem). */
export const SESSION_KEYS6: Record<Exclude<Persistence, ''>, FlowKey> = {
  srcip: { expr: 'ip6 saddr', type: 'ipv6_addr' },
  srcport: SESSION_KEYS.srcport,
  srcmac: SESSION_KEYS.srcmac,
  srcip_srcport: { expr: 'ip6 saddr . th sport', type: 'ipv6_addr . inet_service' },
  srcip_dstport: { expr: 'ip6 saddr . th dport', type: 'ipv6_addr . inet_service' },
};

/**
 * What differs between an IPv4 and an IPv6 farm: the header its addresses are read from and
 * the table-wide maps of that address type. Everything else (marks, selection, counters,
 * stage chains of the same shape) is shared.
 */
export interface FamilyNames {
  ipv6: boolean;
  /** The nft protocol of the address fields: `ip` or `ip6`. */
  ip: 'ip' | 'ip6';
  flowKeys: Record<'ports' | 'all', FlowKey>;
  sessionKeys: Record<Exclude<Persistence, ''>, FlowKey>;
  portDispatch: string;
  rangeDispatch: string;
  anyDispatch: string;
  guard: string;
  replyPorts: string;
  replies: string;
  anyReplies: string;
  addresses: string;
  endpoints: string;
}

export const IPV4_NAMES: FamilyNames = {
  ipv6: false,
  ip: 'ip',
  flowKeys: FLOW_KEYS,
  sessionKeys: SESSION_KEYS,
  portDispatch: PORT_DISPATCH_MAP,
  rangeDispatch: RANGE_DISPATCH_MAP,
  anyDispatch: ANY_DISPATCH_MAP,
  guard: GUARDED_VIPS_SET,
  replyPorts: REPLY_PORT_DISPATCH_MAP,
  replies: REPLY_DISPATCH_MAP,
  anyReplies: REPLY_ANY_DISPATCH_MAP,
  addresses: BACKEND_ADDRESSES_MAP,
  endpoints: BACKEND_ENDPOINTS_MAP,
};

export const IPV6_NAMES: FamilyNames = {
  ipv6: true,
  ip: 'ip6',
  flowKeys: FLOW_KEYS6,
  sessionKeys: SESSION_KEYS6,
  portDispatch: PORT_DISPATCH_MAP6,
  rangeDispatch: RANGE_DISPATCH_MAP6,
  anyDispatch: ANY_DISPATCH_MAP6,
  guard: GUARDED_VIPS_SET6,
  replyPorts: REPLY_PORT_DISPATCH_MAP6,
  replies: REPLY_DISPATCH_MAP6,
  anyReplies: REPLY_ANY_DISPATCH_MAP6,
  addresses: BACKEND_ADDRESSES_MAP6,
  endpoints: BACKEND_ENDPOINTS_MAP6,
};

/** The names of a farm's family (its VIP's). */
export const familyNames = (vip: string): FamilyNames => (isIpv6Text(vip) ? IPV6_NAMES : IPV4_NAMES);

/** A dynamic map filled by the packet path (pins, sessions). */
export function dynamicMap(name: string, keyType: string, timeoutSeconds: number): SetDecl {
  return {
    kind: 'map',
    name,
    body: [`type ${keyType} : mark`, `size ${FLOW_MAP_SIZE}`, 'flags dynamic,timeout', `timeout ${timeoutSeconds}s`],
    typeKey: `${keyType} : mark`,
    dynamic: true,
  };
}

/** What a new flow is hashed on. */
function hashInput(farm: DesiredFarm): string {
  const ports = farm.protocol !== 'all';
  const ip = familyNames(farm.vip).ip;
  switch (farm.algorithm) {
    case 'hash_srcip':
      return `${ip} saddr`;
    case 'hash_srcip_srcport':
      return ports ? `${ip} saddr . th sport` : `${ip} saddr`;
    default:
      // weight, leastconn where connections are not counted (dsr, stateless_dnat), and
      // symhash: the load balancer chooses on one direction only, so a flow hash is as
      // symmetric as it needs to be, and unlike nft's symhash it has a fixed seed.
      return ports ? `${ip} saddr . ${ip} daddr . th sport . th dport` : `${ip} saddr . ${ip} daddr`;
  }
}

/** Farms whose region is a round-robin cycle rather than a consistent-hash table. */
const takesTurns = (farm: DesiredFarm): boolean => farm.algorithm === 'roundrobin' || (farm.algorithm === 'leastconn' && usesConntrack(farm.nattype));

/** The expression that writes a new flow's bucket key into its region. */
function bucketExpression(farm: DesiredFarm): string {
  const base = hex(regionBase(farm.slot));
  return takesTurns(farm)
    ? `numgen inc mod ${farm.regionSize} offset ${base}`
    : `jhash ${hashInput(farm)} mod ${farm.regionSize} seed ${SEED} offset ${base}`;
}

const memberOf = (b: DesiredBackend): SelectionMember => ({ identity: b.identity, weight: b.weight, mark: b.uid });

/** The farm's selection region: which backend each bucket gives a new flow. */
export function selectionRegion(farm: DesiredFarm, table: TableName): Region {
  const serving = farm.backends.filter((b) => b.role === 'serving');
  let marks: Uint32Array;
  if (farm.algorithm === 'leastconn' && usesConntrack(farm.nattype)) {
    // The backends with the fewest connections per unit of weight, counted every second;
    // new flows go to them in weighted turn until the next count.
    const load = (b: DesiredBackend) => (b.connections ?? 0) / Math.max(1, b.weight);
    const least = Math.min(...serving.map(load));
    marks = roundRobinTable(serving.filter((b) => load(b) === least).map(memberOf), farm.regionSize);
  } else if (takesTurns(farm)) {
    marks = roundRobinTable(serving.map(memberOf), farm.regionSize);
  } else {
    marks = consistentTable(serving.map(memberOf), farm.regionSize);
  }
  return { table, base: regionBase(farm.slot), marks };
}

/** The elements a region puts into the selection map. */
export function regionElements(region: Region): Element[] {
  const out: Element[] = [];
  for (let i = 0; i < region.marks.length; i++) if (region.marks[i] !== 0) out.push({ key: region.base + i, value: region.marks[i]! });
  return out;
}

/** The dispatch keys of the farm, each with its verdict. */
function dispatchElements(farm: DesiredFarm, table: TableName, verdict: string): Contribution[] {
  const names = familyNames(farm.vip);
  if (farm.ports === null) return [{ table, set: names.anyDispatch, key: farm.vip, value: verdict }];
  return farm.ports.map((r) =>
    r.low === r.high
      ? { table, set: names.portDispatch, key: `${farm.vip} . ${farm.protocol} . ${r.low}`, value: verdict }
      : { table, set: names.rangeDispatch, key: `${farm.vip} . ${farm.protocol} . ${r.low}-${r.high}`, value: verdict },
  );
}

const marks = (table: TableName, set: string, backends: readonly DesiredBackend[]): Contribution[] =>
  backends.map((b) => ({ table, set, key: String(b.uid), value: '' }));

/** A rendered farm's objects. The farm must be running and without problem. */
export function renderFarm(farm: DesiredFarm): FarmObjects {
  return usesConntrack(farm.nattype) ? renderNatFarm(farm) : renderNetdevFarm(farm);
}

function guardElements(farm: DesiredFarm): Contribution[] {
  // Forwarding is on for proxy ARP: traffic to a VIP that no farm takes would loop.
  return farm.iface && farm.proxied ? [{ table: 'netdev', set: familyNames(farm.vip).guard, key: farm.vip, value: '' }] : [];
}

function renderNetdevFarm(farm: DesiredFarm): FarmObjects {
  const slot = farm.slot;
  const iface = farm.iface!;
  const stateless = farm.nattype === 'stateless_dnat';
  // Frames go to the backends' MAC addresses: excluded ones (cut, no MAC) receive nothing.
  const sendable = farm.backends.filter((b) => b.role !== 'excluded' && b.mac !== null).sort((a, b) => a.uid - b.uid);
  const names = familyNames(farm.vip);
  const kind = flowKind(farm.protocol, names.ipv6);
  const flow = names.flowKeys[farm.protocol === 'all' ? 'all' : 'ports'].expr;
  const flows = flowsMap(farm.protocol, names.ipv6);
  const session = farm.persistence === '' ? null : { ...names.sessionKeys[farm.persistence], map: farmSessionsMap(slot) };
  const mode = farm.nattype as 'dsr' | 'stateless_dnat';
  const serve = serveChain(mode, kind, iface.name, iface.index);
  const pin = pinChain(mode, kind, iface.name, iface.index);
  // `fwd to` is bound to the interface index when loaded: a re-created interface needs a reload.
  const signature = `fwd ${iface.name}#${iface.index}`;
  // Our MAC as source, or the switch learns the client's MAC here. (IPv6: the priority held
  // the flow key; it leaves as it came, 0.)
  const send = `ether saddr set ${iface.mac} ether daddr set meta mark map @${BACKEND_MACS_MAP}${names.ipv6 ? ' meta priority set 0' : ''} fwd to "${iface.name}"`;
  // The backend's address (and port, for backends that have one) replace the VIP's; nft fixes the checksums.
  const rewrite = stateless
    ? [
        `${names.ip} daddr set meta mark map @${names.addresses}`,
        ...(farm.protocol === 'tcp' || farm.protocol === 'udp' ? [`${farm.protocol} dport set meta mark map @${BACKEND_PORTS_MAP}`] : []),
      ]
    : [];
  // stateless_dnat sends from a chain of its own: a backend without a port misses the ports
  // map, which must end only that rule. dsr sends in the same rule.
  const sendChainName = stateless ? sendChain(mode, kind, iface.name, iface.index) : null;

  const stages: ChainDecl[] = [
    {
      name: pin,
      rules: [
        // IPv6: the flow's key is a hash of its tuple (FLOW_KEYS6 says why).
        ...(names.ipv6 ? [`meta priority set jhash ${FLOW_ADDRESSES6} mod 4294967295 seed ${SEED}`] : []),
        // A SYN starts a new connection: a pin left by an earlier connection on the same ports
        // (pins outlive connections) must not send it to that backend, which may be down or drained.
        ...(farm.protocol === 'tcp' ? [`tcp flags & (fin | syn | rst | ack) == syn delete @${flows} { ${flow} : meta mark }`] : []),
        // The established packet's whole path: its pin, refreshed (an existing entry: the
        // update cannot fail for want of room), then sent. A miss anywhere ends the rule.
        `meta mark set ${flow} map @${flows} update @${flows} { ${flow} : meta mark } ${sendChainName ? `goto ${sendChainName}` : send}`,
        // The mark carries the chosen backend; a map miss leaves it as it was, so start from 0.
        'meta mark set 0',
        // Still a pin (dsr): its backend is gone; serve forgets it and the farm drops the packet.
        `meta mark set ${flow} map @${flows}`,
      ],
      signature,
    },
    {
      name: serve,
      rules: [
        // A bucket key (top bit set) becomes the backend it names: a new flow, counted.
        `meta mark >= ${SELECTION_KEY} meta mark set meta mark map @${SELECTION_MAP} meta mark @${NEW_FLOWS_SET}`,
        // A rule of its own: when the map is full the update fails, ending only this rule.
        `meta mark < ${SELECTION_KEY} update @${flows} { ${flow} : meta mark }`,
        ...rewrite,
        send,
        // Reached only when the pinned backend is gone (cut, removed): forget the pin so the
        // client's next attempt is balanced again.
        `meta mark < ${SELECTION_KEY} delete @${flows} { ${flow} : meta mark }`,
      ],
      signature,
    },
    ...(sendChainName ? [{ name: sendChainName, rules: [...rewrite, send], signature }] : []),
    countDropChain(),
  ];
  const rules = [
    `jump ${pin}`,
    ...(session ? [`meta mark 0 meta mark set ${session.expr} map @${session.map} jump ${countNewFlowChain('meta')}`] : []),
    `meta mark 0 meta mark set ${bucketExpression(farm)}`,
    ...(session
      ? [
          `jump ${selectChain('meta')}`,
          `meta mark < ${SELECTION_KEY} update @${session.map} { ${session.expr} : meta mark }`,
        ]
      : []),
    `jump ${serve}`,
    // The session's backend is gone: forget the session, or the client's every retry would
    // refresh it and be dropped again.
    ...(session ? [`delete @${session.map} { ${session.expr} : meta mark }`] : []),
    // Nothing took the packet: counted for the farm, and never let up to our own stack.
    `meta mark set ${slot} jump ${COUNT_DROP_CHAIN}`,
  ];
  if (session) stages.push(selectStage('meta'), countNewFlowStage('meta'));
  const chains: { table: TableName; chain: ChainDecl }[] = [{ table: 'netdev', chain: { name: farmChain(slot), rules } }];
  const elements: Contribution[] = [
    ...dispatchElements(farm, 'netdev', `jump ${farmChain(slot)}`),
    ...guardElements(farm),
    ...marks('netdev', NEW_FLOWS_SET, farm.backends),
    { table: 'netdev', set: FARM_DROPS_SET, key: String(slot), value: '' },
    ...sendable.map((b): Contribution => ({ table: 'netdev', set: BACKEND_MACS_MAP, key: String(b.uid), value: b.mac! })),
  ];
  if (stateless) {
    elements.push(...sendable.map((b): Contribution => ({ table: 'netdev', set: names.addresses, key: String(b.uid), value: b.ip })));
    elements.push(
      ...sendable.filter((b) => b.port !== null).map((b): Contribution => ({ table: 'netdev', set: BACKEND_PORTS_MAP, key: String(b.uid), value: String(b.port) })),
    );
    const single = singlePortOf(farm.ports === null ? { any: true } : { any: false, ranges: farm.ports });
    const rewritesPort = farm.protocol !== 'all' && sendable.some((b) => b.port !== null);
    const restorePort = rewritesPort && single !== null ? ` ${farm.protocol} sport set ${single}` : '';
    // Back to the VIP, then the kernel routes the reply to the client (forwarding is on).
    chains.push({ table: 'netdev', chain: { name: farmRepliesChain(slot), rules: [`${names.ip} saddr set ${farm.vip}${restorePort} accept`] } });
    const verdict = `jump ${farmRepliesChain(slot)}`;
    for (const c of replyClaims(farm)) {
      if (c.protocol === 'all') elements.push({ table: 'netdev', set: names.anyReplies, key: c.ip, value: verdict });
      else if (c.low === c.high) elements.push({ table: 'netdev', set: names.replyPorts, key: `${c.ip} . ${c.protocol} . ${c.low}`, value: verdict });
      else elements.push({ table: 'netdev', set: names.replies, key: `${c.ip} . ${c.protocol} . ${c.low}-${c.high}`, value: verdict });
    }
  }
  return {
    farmId: farm.farmId,
    chains,
    sets: session ? [{ table: 'netdev', set: dynamicMap(session.map, session.type, farm.ttl) }] : [],
    stages: stages.map((chain) => ({ table: 'netdev' as const, chain })),
    elements,
    region: selectionRegion(farm, 'netdev'),
    ingress: { iface, replies: stateless },
  };
}

function renderNatFarm(farm: DesiredFarm): FarmObjects {
  const slot = farm.slot;
  // Who may still receive new connections' packets: everyone but the excluded (cut).
  const reachable = farm.backends.filter((b) => b.role !== 'excluded').sort((a, b) => a.uid - b.uid);
  const names = familyNames(farm.vip);
  const session = farm.persistence === '' ? null : { ...names.sessionKeys[farm.persistence], map: farmSessionsMap(slot) };
  const withPort = farm.protocol === 'all' ? [] : reachable.filter((b) => b.port !== null);
  const withoutPort = reachable.filter((b) => !withPort.includes(b));
  const stages: ChainDecl[] = [
    selectStage('ct'),
    {
      name: dnatChain(farm.protocol, names.ipv6),
      // A map miss ends a rule: backends with a port of their own first, then the others.
      rules: [
        ...(farm.protocol === 'all' ? [] : [`meta l4proto ${farm.protocol} dnat ${names.ip} addr . port to ct mark map @${names.endpoints}`]),
        `dnat ${names.ip} to ct mark map @${names.addresses}`,
      ],
    },
    countDropChain(),
  ];
  if (session) stages.push(countNewFlowStage('ct'));
  const rules = [
    // The connection mark carries the chosen backend and stays with the connection.
    'ct mark set 0',
    ...(session ? [`ct mark set ${session.expr} map @${session.map} jump ${countNewFlowChain('ct')}`] : []),
    `ct mark 0 ct mark set ${bucketExpression(farm)}`,
    `jump ${selectChain('ct')}`,
    ...(session ? [`ct mark != 0 ct mark < ${SELECTION_KEY} update @${session.map} { ${session.expr} : ct mark }`] : []),
    `jump ${dnatChain(farm.protocol, names.ipv6)}`,
    // Reached only when the session's backend is gone (cut, removed): forget the session,
    // or the client's every retry would refresh it and be dropped again.
    ...(session ? [`delete @${session.map} { ${session.expr} : ct mark }`] : []),
    `meta mark set ${slot} jump ${COUNT_DROP_CHAIN}`,
  ];
  const elements: Contribution[] = [
    // nat and dnat farms are only let through the netdev table: their rules are in the ip table.
    ...dispatchElements(farm, 'netdev', 'accept'),
    ...guardElements(farm),
    ...dispatchElements(farm, 'ip', `jump ${farmChain(slot)}`),
    ...marks('ip', NEW_FLOWS_SET, farm.backends),
    ...marks('ip', FORWARDED_SET, farm.backends),
    ...(farm.nattype === 'nat' ? marks('ip', MASQUERADED_BACKENDS_SET, farm.backends) : []),
    { table: 'ip', set: FARM_DROPS_SET, key: String(slot), value: '' },
    ...withoutPort.map((b): Contribution => ({ table: 'ip', set: names.addresses, key: String(b.uid), value: b.ip })),
    ...withPort.map((b): Contribution => ({ table: 'ip', set: names.endpoints, key: String(b.uid), value: `${b.ip} . ${b.port}` })),
  ];
  return {
    farmId: farm.farmId,
    chains: [{ table: 'ip', chain: { name: farmChain(slot), rules } }],
    sets: session ? [{ table: 'ip', set: dynamicMap(session.map, session.type, farm.ttl) }] : [],
    stages: stages.map((chain) => ({ table: 'ip' as const, chain })),
    elements,
    region: selectionRegion(farm, 'ip'),
    ingress: { iface: farm.iface!, replies: false },
  };
}

/** Bucket key -> backend, counted as a new flow; any other mark passes unchanged. */
function selectStage(mark: 'meta' | 'ct'): ChainDecl {
  const m = `${mark} mark`;
  return { name: selectChain(mark), rules: [`${m} >= ${SELECTION_KEY} ${m} set ${m} map @${SELECTION_MAP} ${m} @${NEW_FLOWS_SET}`] };
}

/** A session answered for a new flow: counted like a choice of the table. */
function countNewFlowStage(mark: 'meta' | 'ct'): ChainDecl {
  return { name: countNewFlowChain(mark), rules: [`${mark} mark @${NEW_FLOWS_SET}`] };
}

/** The farm's slot is in the packet mark: its drop counter counts the packet. */
function countDropChain(): ChainDecl {
  return { name: COUNT_DROP_CHAIN, rules: [`meta mark @${FARM_DROPS_SET} drop`, 'drop'] };
}
