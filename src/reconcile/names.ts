/**
 * Every nftables object nftfarm owns, by name, and the numbers written into packet marks.
 * Farm objects are named after the farm's data-plane slot (a small number the store gives
 * each farm and reuses after deletion), never its name: a rename must not touch the kernel.
 */

export const TABLE_FAMILY = 'netdev';
export const TABLE_NAME = 'nftfarm';

/**
 * Farms in the conntrack NAT modes (nat, dnat) live in a second table, of family inet: NAT
 * needs the IP stack's nat hooks, which the netdev family does not have, and one inet table
 * serves IPv4 and IPv6 farms (issue 13). (Versions before IPv6 used a table of family ip:
 * the daemon deletes a leftover one at start.)
 */
export const NAT_TABLE_FAMILY = 'inet';
/** The NAT table of versions before IPv6. */
export const LEGACY_NAT_TABLE_FAMILY = 'ip';
export const NAT_TABLE_NAME = 'nftfarm';

/**
 * Verdict map VIP . protocol . port -> jump to the farm's chain, for single ports. A hash:
 * the lookup costs the same with 1 farm or 10,000.
 */
export const PORT_DISPATCH_MAP = 'ipv4_vip_ports';
/**
 * The same for port ranges: an interval map, whose lookup grows with its size (nft's pipapo
 * set), so only ranges go there and single ports never pay for it.
 */
export const RANGE_DISPATCH_MAP = 'ipv4_vip_port_ranges';
/** Verdict map VIP -> jump, for farms of protocol 'all'. */
export const ANY_DISPATCH_MAP = 'ipv4_vip_any';
/** VIPs announced by proxy ARP: what no farm takes is dropped, or it would loop (forwarding is on). */
export const GUARDED_VIPS_SET = 'ipv4_proxied_vips';
/**
 * stateless_dnat: backend address . protocol . source port -> jump to the replies chain of its
 * farm, for single ports. A hash, as PORT_DISPATCH_MAP: the lookup costs the same with 1 farm
 * or 10,000, and the netlink writer loads it (nft must re-read an interval map's elements at
 * every write: a cold load of 10,000 farms through nft grew as N^2, 10 of its 15 s).
 */
export const REPLY_PORT_DISPATCH_MAP = 'ipv4_backend_reply_ports';
/** The same for port ranges (an interval map, as RANGE_DISPATCH_MAP). */
export const REPLY_DISPATCH_MAP = 'ipv4_backend_replies';
/** The same for stateless_dnat farms of protocol 'all': backend address -> jump. */
export const REPLY_ANY_DISPATCH_MAP = 'ipv4_backend_any_replies';

/*
 * The same for IPv6 VIPs (issue 13): one netdev table serves both families, each with maps
 * of its own address type; a farm's family is its VIP's.
 */
export const PORT_DISPATCH_MAP6 = 'ipv6_vip_ports';
export const RANGE_DISPATCH_MAP6 = 'ipv6_vip_port_ranges';
export const ANY_DISPATCH_MAP6 = 'ipv6_vip_any';
/** IPv6 VIPs announced by proxy NDP: what no farm takes is dropped (forwarding is on). */
export const GUARDED_VIPS_SET6 = 'ipv6_proxied_vips';
export const REPLY_PORT_DISPATCH_MAP6 = 'ipv6_backend_reply_ports';
export const REPLY_DISPATCH_MAP6 = 'ipv6_backend_replies';
export const REPLY_ANY_DISPATCH_MAP6 = 'ipv6_backend_any_replies';

export const farmChain = (slot: number): string => `farm_${slot}`;
/** stateless_dnat: the replies of the farm's backends get the VIP (and virtual port) back here. */
export const farmRepliesChain = (slot: number): string => `farm_${slot}_replies`;
/** Persistence key -> backend mark, with the farm's ttl. */
export const farmSessionsMap = (slot: number): string => `farm_${slot}_sessions`;

/*
 * Marks. A backend's mark is its store-wide number (below 2^31). A farm's rule for a new flow
 * writes a bucket key instead: SELECTION_BASE + slot x 2^REGION_BITS + bucket, which the
 * table-wide selection map turns into a backend mark. The top bit tells the two apart.
 */
export const SELECTION_BASE = 0x80000000;
/** Buckets per farm region, at most (see selection.ts). */
export { REGION_BITS } from './selection.js';
import { REGION_BITS } from './selection.js';
/** The first bucket key of a farm's region. */
export const regionBase = (slot: number): number => SELECTION_BASE + slot * 2 ** REGION_BITS;
/** Farm slots fit beside the region bits under the top bit; backend marks stay below the selection keys. */
export { MAX_FARM_SLOT, MAX_BACKEND_MARK } from '../model/farm.js';
import { MAX_FARM_SLOT } from '../model/farm.js';
if ((MAX_FARM_SLOT + 1) * 2 ** REGION_BITS !== SELECTION_BASE) throw new Error('farm slots and region bits must fill 31 bits');

/** Bucket key (meta mark or ct mark) -> backend mark: every farm's region, one map per table. */
export const SELECTION_MAP = 'selection';
/** Backend mark -> MAC address, with per-backend packet counters (dsr, stateless_dnat). */
export const BACKEND_MACS_MAP = 'backend_macs';
/** Backend mark -> address (stateless_dnat rewrites; nat and dnat backends keeping the virtual port). */
export const BACKEND_ADDRESSES_MAP = 'backend_addresses';
/** Backend mark -> IPv6 address (stateless_dnat rewrites, nat and dnat backends keeping the virtual port, on IPv6 farms). */
export const BACKEND_ADDRESSES_MAP6 = 'backend_addresses6';
/** Backend mark -> IPv6 address . port (nat and dnat backends of IPv6 farms with a port of their own). */
export const BACKEND_ENDPOINTS_MAP6 = 'backend_endpoints6';
/** Backend mark -> port (stateless_dnat backends with a port of their own). */
export const BACKEND_PORTS_MAP = 'backend_ports';
/** Backend mark -> address . port (nat and dnat backends with a port of their own). */
export const BACKEND_ENDPOINTS_MAP = 'backend_endpoints';
/**
 * Backend marks of every farm in the table, with per-element counters: how many new flows
 * each backend was chosen for (a lookup by the rule that chose it bumps the counter).
 */
export const NEW_FLOWS_SET = 'backend_new_flows';
/** Farm slots with per-element counters: the packets each farm dropped for want of a backend. */
export const FARM_DROPS_SET = 'farm_drops';
/** nat and dnat: backend marks with counters of the packets forwarded to them (see counting). */
export const FORWARDED_SET = 'backend_forwarded';
/** nat and dnat: the filter chain on the forward hook that counts them. */
export const NAT_FORWARD_CHAIN = 'forward';
/** Backend marks of farms in mode nat: connections DNATed to them are also masqueraded. */
export const MASQUERADED_BACKENDS_SET = 'masqueraded_backends';
export const NAT_PREROUTING_CHAIN = 'prerouting';
export const NAT_POSTROUTING_CHAIN = 'postrouting';

/**
 * Flow -> backend mark, one map per protocol (each with its idle timeout): the flow's
 * addresses and ports include the VIP and virtual port, so one map holds every farm's pins.
 */
export const flowKind = (protocol: string, ipv6 = false): string => `${protocol === 'all' ? 'any' : protocol}${ipv6 ? '6' : ''}`;
export const flowsMap = (protocol: string, ipv6 = false): string => `flows_${flowKind(protocol, ipv6)}`;

/*
 * Stage chains, shared by the farms: every rule that reads or writes a table-wide map lives in
 * one of these, and farm chains jump to them. The kernel checks each element added to a map
 * against every rule bound to the map (and each new binding against every element), so maps
 * bound from 10,000 farm chains made loads quadratic.
 */
/**
 * dsr, stateless_dnat: forgets a stale pin on a TCP SYN; a pinned flow is refreshed and sent
 * from here (the established packet's short path); otherwise the mark says whether a pin was
 * found (its backend gone) or not. Per mode and interface, as it sends.
 */
export const pinChain = (nattype: 'dsr' | 'stateless_dnat', kind: string, ifname: string, ifindex: number): string =>
  `pin_${modeTag(nattype)}_${kind}_${interfaceTag(ifname, ifindex)}`;
/** stateless_dnat: rewrites and sends a pinned flow's packet (the pin stage goes here). */
export const sendChain = (nattype: 'dsr' | 'stateless_dnat', kind: string, ifname: string, ifindex: number): string =>
  `send_${modeTag(nattype)}_${kind}_${interfaceTag(ifname, ifindex)}`;
/** Bucket key -> backend mark, counted as a new flow (meta mark or ct mark). */
export const selectChain = (mark: 'meta' | 'ct'): string => (mark === 'meta' ? 'select' : 'select_ct');
/** A persistence session answered: counted as a new flow. */
export const countNewFlowChain = (mark: 'meta' | 'ct'): string => (mark === 'meta' ? 'count_new_flow' : 'count_new_flow_ct');
/** dsr, stateless_dnat: select, pin, rewrite (stateless_dnat), send, or forget a dead pin. */
export const serveChain = (nattype: 'dsr' | 'stateless_dnat', kind: string, ifname: string, ifindex: number): string =>
  `serve_${modeTag(nattype)}_${kind}_${interfaceTag(ifname, ifindex)}`;
const modeTag = (nattype: 'dsr' | 'stateless_dnat'): string => (nattype === 'dsr' ? 'dsr' : 'sdnat');
/** nat, dnat: DNAT to the chosen backend, per protocol. */
export const dnatChain = (protocol: string, ipv6 = false): string => `dnat${ipv6 ? '6' : ''}_${protocol}`;
/** nat, dnat: drops the ICMPv6 redirects this host would send (IPv6 has no send_redirects). */
export const NAT_OUTPUT_CHAIN = 'output';
/** Counts the packet for the farm whose slot is in the mark, then drops it. */
export const COUNT_DROP_CHAIN = 'count_drop';

const SAFE_IFNAME = /^[a-zA-Z][a-zA-Z0-9_.-]*$/;
const interfaceTag = (ifname: string, ifindex: number): string => (SAFE_IFNAME.test(ifname) ? ifname : `if${ifindex}`);

/** One ingress base chain per interface that carries VIPs. */
export const ingressChain = (ifname: string, ifindex: number): string => `ingress_${interfaceTag(ifname, ifindex)}`;

/**
 * The jhash seed of every farm. Fixed, not random: nft picks a random seed per rule when
 * none is given, which would reshuffle unpinned flows on every reload and give each node of
 * an ECMP group a different table.
 */
export const HASH_SEED = 0x6e667466;

/** Priority of the ingress hooks: early, before anything else an admin hooks there. */
export const INGRESS_PRIORITY = -200;
