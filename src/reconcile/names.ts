/**
 * Every nftables object nftfarm owns, by name. Farm objects are named after the farm's store
 * id, never its name: a rename must not touch the kernel, and ids are never reused.
 */

export const TABLE_FAMILY = 'netdev';
export const TABLE_NAME = 'nftfarm';

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

export const farmChain = (farmId: number): string => `farm_${farmId}`;
/** Bucket -> backend mark (Maglev table, or the round-robin sequence). */
export const farmBucketsMap = (farmId: number): string => `farm_${farmId}_buckets`;
/** Backend mark -> MAC address, with per-backend packet counters. */
export const farmMacsMap = (farmId: number): string => `farm_${farmId}_macs`;
/** Flow -> backend mark: pins every established flow to its backend across table changes. */
export const farmFlowsMap = (farmId: number): string => `farm_${farmId}_flows`;
/**
 * Backend marks of every farm (marks are store-wide), with per-element counters: how many
 * new flows each backend was chosen for. One set for the table, not one per farm: the kernel
 * finds a set by name with a walk of the table's set list, so each set per farm makes every
 * load of a big table slower (a cold load of N farms already costs O(N^2) in such walks).
 */
export const NEW_FLOWS_SET = 'backend_new_flows';
/** Persistence key -> backend mark, with the farm's ttl. */
export const farmSessionsMap = (farmId: number): string => `farm_${farmId}_sessions`;

const SAFE_IFNAME = /^[a-zA-Z][a-zA-Z0-9_.-]*$/;

/** One ingress base chain per interface that carries VIPs. */
export const ingressChain = (ifname: string, ifindex: number): string =>
  SAFE_IFNAME.test(ifname) ? `ingress_${ifname}` : `ingress_if${ifindex}`;

/**
 * The jhash seed of every farm. Fixed, not random: nft picks a random seed per rule when
 * none is given, which would reshuffle unpinned flows on every reload and give each node of
 * an ECMP group a different table.
 */
export const HASH_SEED = 0x6e667466;

/** Priority of the ingress hooks: early, before anything else an admin hooks there. */
export const INGRESS_PRIORITY = -200;
