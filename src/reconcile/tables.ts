/**
 * The skeleton of nftfarm's two tables: the table-wide sets and maps every farm writes its
 * elements into, and the base chains. Pure. They exist while the table exists: `netdev
 * nftfarm` while any farm has rules, `inet nftfarm` while any nat or dnat farm has.
 */
import type { ChainDecl, SetDecl, TableName, TableRef } from '../dataplane/nft/objects.js';
import { dynamicMap, FLOW_KEYS, FLOW_KEYS6, FLOW_TIMEOUT_SECONDS, IPV4_NAMES, IPV6_NAMES, type FamilyNames } from './farm-render.js';
import type { IngressNeed } from './farm-render.js';
import {
  ANY_DISPATCH_MAP,
  BACKEND_ADDRESSES_MAP,
  BACKEND_ADDRESSES_MAP6,
  BACKEND_ENDPOINTS_MAP,
  BACKEND_ENDPOINTS_MAP6,
  BACKEND_MACS_MAP,
  BACKEND_PORTS_MAP,
  FARM_DROPS_SET,
  FORWARDED_SET,
  GUARDED_VIPS_SET,
  INGRESS_PRIORITY,
  MASQUERADED_BACKENDS_SET,
  NAT_FORWARD_CHAIN,
  NAT_OUTPUT_CHAIN,
  NAT_POSTROUTING_CHAIN,
  NAT_PREROUTING_CHAIN,
  NAT_TABLE_FAMILY,
  NAT_TABLE_NAME,
  NEW_FLOWS_SET,
  PORT_DISPATCH_MAP,
  RANGE_DISPATCH_MAP,
  REPLY_ANY_DISPATCH_MAP,
  REPLY_DISPATCH_MAP,
  REPLY_PORT_DISPATCH_MAP,
  SELECTION_MAP,
  TABLE_FAMILY,
  TABLE_NAME,
  flowsMap,
  ingressChain,
} from './names.js';

export const TABLES: Record<TableName, TableRef> = {
  netdev: { family: TABLE_FAMILY, name: TABLE_NAME },
  ip: { family: NAT_TABLE_FAMILY, name: NAT_TABLE_NAME },
};
export const TABLE_NAMES: readonly TableName[] = ['netdev', 'ip'];

/**
 * Elements the selection map of a table may hold: every farm's region (64 buckets for up to
 * 16 backends: 65,536 such farms). A declared size lets the kernel size its hash once; an
 * undeclared one made loads 2x slower with rehashing.
 */
export const SELECTION_MAP_SIZE = 4_194_304;

const map = (name: string, type: string, extra: string[] = []): SetDecl => ({ kind: 'map', name, body: [`type ${type}`, ...extra], typeKey: type, dynamic: false });
const set = (name: string, type: string, extra: string[] = []): SetDecl => ({ kind: 'set', name, body: [`type ${type}`, ...extra], typeKey: type, dynamic: false });

function dispatchMaps(): SetDecl[] {
  return [
    map(PORT_DISPATCH_MAP, 'ipv4_addr . inet_proto . inet_service : verdict'),
    map(RANGE_DISPATCH_MAP, 'ipv4_addr . inet_proto . inet_service : verdict', ['flags interval']),
    map(ANY_DISPATCH_MAP, 'ipv4_addr : verdict'),
  ];
}

/** The netdev table's maps for IPv6 farms: the same roles, IPv6 keys. */
const NETDEV_SETS6: SetDecl[] = [
  map(IPV6_NAMES.portDispatch, 'ipv6_addr . inet_proto . inet_service : verdict'),
  map(IPV6_NAMES.rangeDispatch, 'ipv6_addr . inet_proto . inet_service : verdict', ['flags interval']),
  map(IPV6_NAMES.anyDispatch, 'ipv6_addr : verdict'),
  set(IPV6_NAMES.guard, 'ipv6_addr'),
  map(IPV6_NAMES.replyPorts, 'ipv6_addr . inet_proto . inet_service : verdict'),
  map(IPV6_NAMES.replies, 'ipv6_addr . inet_proto . inet_service : verdict', ['flags interval']),
  map(IPV6_NAMES.anyReplies, 'ipv6_addr : verdict'),
  map(BACKEND_ADDRESSES_MAP6, 'mark : ipv6_addr'),
  ...(['tcp', 'udp', 'sctp', 'all'] as const).map((p) => dynamicMap(flowsMap(p, true), FLOW_KEYS6[p === 'all' ? 'all' : 'ports'].type, FLOW_TIMEOUT_SECONDS[p])),
];

const NETDEV_SETS: SetDecl[] = [
  ...dispatchMaps(),
  set(GUARDED_VIPS_SET, 'ipv4_addr'),
  map(REPLY_PORT_DISPATCH_MAP, 'ipv4_addr . inet_proto . inet_service : verdict'),
  map(REPLY_DISPATCH_MAP, 'ipv4_addr . inet_proto . inet_service : verdict', ['flags interval']),
  map(REPLY_ANY_DISPATCH_MAP, 'ipv4_addr : verdict'),
  set(NEW_FLOWS_SET, 'mark', ['counter']),
  set(FARM_DROPS_SET, 'mark', ['counter']),
  map(SELECTION_MAP, 'mark : mark', [`size ${SELECTION_MAP_SIZE}`]),
  map(BACKEND_MACS_MAP, 'mark : ether_addr', ['counter']),
  map(BACKEND_ADDRESSES_MAP, 'mark : ipv4_addr'),
  map(BACKEND_PORTS_MAP, 'mark : inet_service'),
  ...(['tcp', 'udp', 'sctp', 'all'] as const).map((p) => dynamicMap(flowsMap(p), FLOW_KEYS[p === 'all' ? 'all' : 'ports'].type, FLOW_TIMEOUT_SECONDS[p])),
  ...NETDEV_SETS6,
];

const IP_SETS: SetDecl[] = [
  ...dispatchMaps(),
  set(MASQUERADED_BACKENDS_SET, 'mark'),
  set(NEW_FLOWS_SET, 'mark', ['counter']),
  set(FORWARDED_SET, 'mark', ['counter']),
  set(FARM_DROPS_SET, 'mark', ['counter']),
  map(SELECTION_MAP, 'mark : mark', [`size ${SELECTION_MAP_SIZE}`]),
  map(BACKEND_ADDRESSES_MAP, 'mark : ipv4_addr'),
  map(BACKEND_ENDPOINTS_MAP, 'mark : ipv4_addr . inet_service'),
  // IPv6 farms.
  map(IPV6_NAMES.portDispatch, 'ipv6_addr . inet_proto . inet_service : verdict'),
  map(IPV6_NAMES.rangeDispatch, 'ipv6_addr . inet_proto . inet_service : verdict', ['flags interval']),
  map(IPV6_NAMES.anyDispatch, 'ipv6_addr : verdict'),
  map(BACKEND_ADDRESSES_MAP6, 'mark : ipv6_addr'),
  map(BACKEND_ENDPOINTS_MAP6, 'mark : ipv6_addr . inet_service'),
];

/** The table-wide sets and maps of a table, in the order they are written. */
export const tableSets = (table: TableName): readonly SetDecl[] => (table === 'netdev' ? NETDEV_SETS : IP_SETS);

/** The static set of that name in the table, for the netlink encoding of its elements. */
export function tableSet(table: TableName, name: string): SetDecl | undefined {
  return tableSets(table).find((s) => s.name === name);
}

const IP_BASE_CHAINS: ChainDecl[] = [
  {
    name: NAT_PREROUTING_CHAIN,
    hook: 'type nat hook prerouting priority dstnat; policy accept;',
    rules: [
      // conntrack has reassembled fragments here, and only a connection's first packet comes.
      `ip daddr . meta l4proto . th dport vmap @${PORT_DISPATCH_MAP}`,
      `ip daddr . meta l4proto . th dport vmap @${RANGE_DISPATCH_MAP}`,
      `ip daddr vmap @${ANY_DISPATCH_MAP}`,
      `ip6 daddr . meta l4proto . th dport vmap @${IPV6_NAMES.portDispatch}`,
      `ip6 daddr . meta l4proto . th dport vmap @${IPV6_NAMES.rangeDispatch}`,
      `ip6 daddr vmap @${IPV6_NAMES.anyDispatch}`,
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
  {
    name: NAT_OUTPUT_CHAIN,
    hook: 'type filter hook output priority filter; policy accept;',
    // IPv6 has no send_redirects: on a one-armed segment traffic leaves by the interface it
    // came in, and a redirect would tell clients and backends to bypass the load balancer.
    rules: ['icmpv6 type nd-redirect drop'],
  },
];

/** The ip table's base chains (the netdev table's are per interface: ingressChainOf). */
export const ipBaseChains = (): readonly ChainDecl[] => IP_BASE_CHAINS;

/**
 * The netdev ingress chain of an interface carrying VIPs: one verdict-map lookup on
 * VIP . protocol . port jumps to the farm's chain (dsr, stateless_dnat) or lets the packet up
 * to the IP stack (nat, dnat); what no farm takes is dropped for announced VIPs.
 */
export function ingressChainOf(need: IngressNeed): ChainDecl {
  const { iface } = need;
  return {
    name: ingressChain(iface.name, iface.index),
    hook: `type filter hook ingress device "${iface.name}" priority ${INGRESS_PRIORITY}; policy accept;`,
    rules: [
      // Only frames addressed to this host (not flooded ones); non-first fragments carry no ports.
      `meta pkttype host ip frag-off & 0x1fff == 0 ip daddr . meta l4proto . th dport vmap @${PORT_DISPATCH_MAP}`,
      `meta pkttype host ip frag-off & 0x1fff == 0 ip daddr . meta l4proto . th dport vmap @${RANGE_DISPATCH_MAP}`,
      `meta pkttype host ip daddr vmap @${ANY_DISPATCH_MAP}`,
      // stateless_dnat: the backends' replies, routed through this host, get the VIP back.
      ...(need.replies ? replyRules(IPV4_NAMES) : []),
      // Forwarding is on for proxy ARP: traffic to a VIP that no farm takes would loop.
      `meta pkttype host ip daddr @${GUARDED_VIPS_SET} counter drop`,
      // IPv6. Neighbour discovery for a VIP (the unicast solicitations that re-check a cached
      // entry are addressed to the VIP) goes up to the kernel, which answers it by proxy NDP:
      // a protocol 'all' farm or the guard must never take it.
      // 135-136: neighbor solicitation and advertisement (a range: an anonymous set would be a
      // kernel object the reconciler does not know).
      `meta pkttype host icmpv6 type 135-136 accept`,
      // The transport header of a non-first fragment is not read (th fails): no match.
      `meta pkttype host ip6 daddr . meta l4proto . th dport vmap @${IPV6_NAMES.portDispatch}`,
      `meta pkttype host ip6 daddr . meta l4proto . th dport vmap @${IPV6_NAMES.rangeDispatch}`,
      `meta pkttype host ip6 daddr vmap @${IPV6_NAMES.anyDispatch}`,
      ...(need.replies ? replyRules(IPV6_NAMES) : []),
      `meta pkttype host ip6 daddr @${IPV6_NAMES.guard} counter drop`,
    ],
    signature: `ingress ${iface.name}#${iface.index}`,
  };
}

function replyRules(names: FamilyNames): string[] {
  const unfragmented = names.ipv6 ? '' : ' ip frag-off & 0x1fff == 0';
  // Single ports in a hash, ranges in an interval map (as the VIP dispatch).
  return [
    `meta pkttype host${unfragmented} ${names.ip} saddr . meta l4proto . th sport vmap @${names.replyPorts}`,
    `meta pkttype host${unfragmented} ${names.ip} saddr . meta l4proto . th sport vmap @${names.replies}`,
    `meta pkttype host ${names.ip} saddr vmap @${names.anyReplies}`,
  ];
}
