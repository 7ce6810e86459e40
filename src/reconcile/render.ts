/**
 * DesiredState -> the nftables table, as data. Pure, so it is tested with golden text that
 * `nft -c` also accepts.
 *
 * Shape (one table, `netdev nftfarm`):
 * - per interface carrying VIPs, an ingress base chain: one hash lookup on
 *   VIP . protocol . port jumps to the farm's chain, whatever the number of farms (port
 *   ranges, then protocol-'all' farms, have maps of their own);
 * - per farm, a chain that pins each flow to a backend and rewrites the MAC addresses (DSR),
 *   with its maps: buckets (Maglev table), macs (backend -> MAC, counted), flows (pins),
 *   sessions (persistence).
 */
import { HASH_SEED, INGRESS_PRIORITY, TABLE_FAMILY, TABLE_NAME, ANY_DISPATCH_MAP, GUARDED_VIPS_SET, PORT_DISPATCH_MAP, RANGE_DISPATCH_MAP, farmBucketsMap, farmChain, farmFlowsMap, farmMacsMap, farmSessionsMap, ingressChain } from './names.js';
import { maglevTable, roundRobinSequence, tableSizeFor, type MaglevMember } from './maglev.js';
import type { DesiredFarm, DesiredState } from './desired.js';
import type { ChainDecl, SetDecl, TableDecl } from '../dataplane/nft/ruleset.js';
import type { Persistence } from '../model/farm.js';
import { COUNT_NEW_FLOW, newFlowsSet } from './counting.js';

/** Flow pins outlive idle periods of this length (IPVS's defaults: tcp 15 min, udp 5 min). */
export const FLOW_TIMEOUT_SECONDS: Record<string, number> = { tcp: 900, udp: 300, sctp: 900, all: 300 };
/**
 * Entries a flow or session map may hold. When full, new flows are still balanced by the
 * table, only not pinned (the `update` fails in a rule of its own and the next rule runs).
 */
export const FLOW_MAP_SIZE = 1_048_576;

const SEED_TEXT = `0x${HASH_SEED.toString(16).padStart(8, '0')}`;

/** The farms that get rules: started, supported, with an interface for their VIP. */
export function renderedFarms(state: DesiredState): DesiredFarm[] {
  return state.farms.filter((f) => f.running && f.problem === null).sort((a, b) => a.farmId - b.farmId);
}

/**
 * Rendered farm objects by farm id, with the inputs they were rendered from. A pass renders
 * again only the farms whose inputs changed, and hands the others' objects over unchanged:
 * the transaction planner sees the same objects and skips them without comparing elements.
 */
export type RenderCache = Map<number, { key: string; sets: SetDecl[]; chain: ChainDecl }>;

/** null when no farm needs rules: then nftfarm's table must not exist at all. */
export function renderTable(state: DesiredState, cache: RenderCache = new Map()): TableDecl | null {
  const farms = renderedFarms(state);
  if (farms.length === 0) return null;

  const portDispatch = new Map<string, string>();
  const rangeDispatch = new Map<string, string>();
  const anyDispatch = new Map<string, string>();
  for (const farm of [...farms].sort((a, b) => ipOrder(a.vip, b.vip) || a.farmId - b.farmId)) {
    const verdict = `jump ${farmChain(farm.farmId)}`;
    if (farm.ports === null) {
      anyDispatch.set(farm.vip, verdict);
      continue;
    }
    for (const r of farm.ports) {
      if (r.low === r.high) portDispatch.set(`${farm.vip} . ${farm.protocol} . ${r.low}`, verdict);
      else rangeDispatch.set(`${farm.vip} . ${farm.protocol} . ${r.low}-${r.high}`, verdict);
    }
  }
  const guarded = new Map(state.announcements.map((a) => [a.vip, '']));

  const sets: SetDecl[] = [
    {
      kind: 'map',
      name: PORT_DISPATCH_MAP,
      body: ['type ipv4_addr . inet_proto . inet_service : verdict'],
      typeKey: 'ipv4_addr . inet_proto . inet_service : verdict',
      elements: portDispatch,
    },
    {
      kind: 'map',
      name: RANGE_DISPATCH_MAP,
      body: ['type ipv4_addr . inet_proto . inet_service : verdict', 'flags interval'],
      typeKey: 'ipv4_addr . inet_proto . inet_service : verdict',
      elements: rangeDispatch,
    },
    { kind: 'map', name: ANY_DISPATCH_MAP, body: ['type ipv4_addr : verdict'], typeKey: 'ipv4_addr : verdict', elements: anyDispatch },
    { kind: 'set', name: GUARDED_VIPS_SET, body: ['type ipv4_addr'], typeKey: 'ipv4_addr', elements: guarded },
    newFlowsSet(farms),
  ];
  const chains: ChainDecl[] = [];

  const interfaces = new Map(farms.map((f) => [f.iface!.name, f.iface!]));
  for (const iface of [...interfaces.values()].sort((a, b) => (a.name < b.name ? -1 : 1))) {
    chains.push({
      name: ingressChain(iface.name, iface.index),
      hook: `type filter hook ingress device "${iface.name}" priority ${INGRESS_PRIORITY}; policy accept;`,
      rules: [
        // Only frames addressed to this host (not flooded ones); non-first fragments carry no ports.
        `meta pkttype host ip frag-off & 0x1fff == 0 ip daddr . meta l4proto . th dport vmap @${PORT_DISPATCH_MAP}`,
        `meta pkttype host ip frag-off & 0x1fff == 0 ip daddr . meta l4proto . th dport vmap @${RANGE_DISPATCH_MAP}`,
        `meta pkttype host ip daddr vmap @${ANY_DISPATCH_MAP}`,
        // Forwarding is on for proxy ARP: traffic to a VIP that no farm takes would loop.
        `meta pkttype host ip daddr @${GUARDED_VIPS_SET} counter drop`,
      ],
    });
  }

  const rendered = new Set<number>();
  for (const farm of farms) {
    // Everything the farm's objects are made of; the generation alone changes nothing.
    const key = JSON.stringify({ ...farm, generation: 0 });
    let entry = cache.get(farm.farmId);
    if (!entry || entry.key !== key) {
      const farmSets = renderFarmSets(farm);
      entry = { key, sets: farmSets.sets, chain: renderFarmChain(farm, farmSets.selector) };
      cache.set(farm.farmId, entry);
    }
    rendered.add(farm.farmId);
    sets.push(...entry.sets);
    chains.push(entry.chain);
  }
  for (const id of cache.keys()) if (!rendered.has(id)) cache.delete(id);
  return { family: TABLE_FAMILY, name: TABLE_NAME, sets, chains };
}

interface FlowKey {
  expr: string;
  type: string;
}

/** What identifies one flow of the farm: every packet of a TCP connection or UDP flow maps to it. */
function flowKey(farm: DesiredFarm): FlowKey {
  // Protocol 'all' also carries ICMP and others without ports: pin by addresses.
  return farm.protocol === 'all'
    ? { expr: 'ip saddr . ip daddr', type: 'ipv4_addr . ipv4_addr' }
    : { expr: 'ip saddr . ip daddr . th sport . th dport', type: 'ipv4_addr . ipv4_addr . inet_service . inet_service' };
}

const SESSION_KEYS: Record<Exclude<Persistence, ''>, FlowKey> = {
  srcip: { expr: 'ip saddr', type: 'ipv4_addr' },
  srcport: { expr: 'th sport', type: 'inet_service' },
  srcmac: { expr: 'ether saddr', type: 'ether_addr' },
  srcip_srcport: { expr: 'ip saddr . th sport', type: 'ipv4_addr . inet_service' },
  srcip_dstport: { expr: 'ip saddr . th dport', type: 'ipv4_addr . inet_service' },
};

function hashInput(farm: DesiredFarm): string {
  const ports = farm.protocol !== 'all';
  switch (farm.algorithm) {
    case 'hash_srcip':
      return 'ip saddr';
    case 'hash_srcip_srcport':
      return ports ? 'ip saddr . th sport' : 'ip saddr';
    default:
      // weight (and symhash: the load balancer sees one direction only, so a flow hash is
      // as symmetric as it needs to be, and unlike nft's symhash it has a fixed seed).
      return ports ? 'ip saddr . ip daddr . th sport . th dport' : 'ip saddr . ip daddr';
  }
}

function renderFarmSets(farm: DesiredFarm): { sets: SetDecl[]; selector: string } {
  const id = farm.farmId;
  const members: MaglevMember[] = farm.backends
    .filter((b) => b.role === 'serving')
    .map((b) => ({ key: `${b.ip}:${b.port ?? ''}`, weight: b.weight, value: b.uid }));
  let size: number;
  let buckets: number[];
  let selector: string;
  if (farm.algorithm === 'roundrobin') {
    buckets = roundRobinSequence(members);
    size = Math.max(1, buckets.length);
    selector = `numgen inc mod ${size}`;
  } else {
    size = tableSizeFor(farm.backends.length);
    buckets = maglevTable(members, size);
    selector = `jhash ${hashInput(farm)} mod ${size} seed ${SEED_TEXT}`;
  }
  const macs = new Map(
    farm.backends
      .filter((b) => b.role !== 'excluded' && b.mac !== null)
      .sort((a, b) => a.uid - b.uid)
      .map((b) => [String(b.uid), b.mac as string]),
  );
  const flow = flowKey(farm);
  const sets: SetDecl[] = [
    {
      kind: 'map',
      name: farmBucketsMap(id),
      body: [`typeof numgen inc mod ${size} : meta mark`],
      typeKey: 'integer : mark',
      elements: new Map(buckets.map((uid, bucket) => [String(bucket), String(uid)])),
    },
    { kind: 'map', name: farmMacsMap(id), body: ['type mark : ether_addr', 'counter'], typeKey: 'mark : ether_addr', elements: macs },
    dynamicMap(farmFlowsMap(id), flow.type, FLOW_TIMEOUT_SECONDS[farm.protocol] ?? 300),
  ];
  if (farm.persistence !== '') sets.push(dynamicMap(farmSessionsMap(id), SESSION_KEYS[farm.persistence].type, farm.ttl));
  return { sets, selector };
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

function renderFarmChain(farm: DesiredFarm, selector: string): ChainDecl {
  const id = farm.farmId;
  const iface = farm.iface!;
  const flow = flowKey(farm).expr;
  const flows = farmFlowsMap(id);
  const session = farm.persistence === '' ? null : { key: SESSION_KEYS[farm.persistence].expr, map: farmSessionsMap(id) };
  const rules = [
    // The mark carries the chosen backend; a map miss leaves it as it was, so start from 0.
    'meta mark set 0',
    `meta mark set ${flow} map @${flows}`,
    // A backend chosen here starts a flow: counted per backend (counting.ts).
    ...(session ? [`meta mark 0 meta mark set ${session.key} map @${session.map}${COUNT_NEW_FLOW}`] : []),
    `meta mark 0 meta mark set ${selector} map @${farmBucketsMap(id)}${COUNT_NEW_FLOW}`,
    // Each update in a rule of its own: when a map is full the update ends only its rule.
    `meta mark != 0 update @${flows} { ${flow} : meta mark }`,
    ...(session ? [`meta mark != 0 update @${session.map} { ${session.key} : meta mark }`] : []),
    // DSR: only MAC addresses change. Our MAC as source, or the switch learns the client's MAC here.
    `ether saddr set ${iface.mac} ether daddr set meta mark map @${farmMacsMap(id)} fwd to "${iface.name}"`,
    // Reached only when the pinned backend is gone (cut, removed): forget the pin so the
    // client's next attempt is balanced again, and never let the packet reach our own stack.
    `delete @${flows} { ${flow} : meta mark }`,
    ...(session ? [`delete @${session.map} { ${session.key} : meta mark }`] : []),
    `counter drop comment "farm ${farm.name}: no backend"`,
  ];
  return { name: farmChain(id), rules, signature: `fwd ${iface.name}#${iface.index}` };
}

function ipOrder(a: string, b: string): number {
  const pa = a.split('.').map(Number);
  const pb = b.split('.').map(Number);
  for (let i = 0; i < 4; i++) if (pa[i] !== pb[i]) return (pa[i] as number) - (pb[i] as number);
  return 0;
}
