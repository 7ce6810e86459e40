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
/** Bucket -> backend mark: the farm's own round-robin (or leastconn) sequence. */
export const farmBucketsMap = (farmId: number): string => `farm_${farmId}_buckets`;
/**
 * Bucket -> slot mark: a consistent-hash table shared by every farm whose serving backends
 * have the same slots and weights. Named after its content, so the name says when it changes.
 */
export const sharedTableMap = (contentHash: string): string => `hrw_${contentHash}`;
/**
 * Slot marks (what shared tables hold) are SLOT_MARK_BASE + the backend's ZAPI id, clear of
 * backend marks (store uids), so a rule can tell which of the two a mark is.
 */
export const SLOT_MARK_BASE = 0x40000000;
/** Bits of a slot mark that hold the slot (the ZAPI backend id); the farm id sits above them. */
export const SLOT_BITS = 10;
/** Slot marks are unique per farm: SLOT_MARK_BASE + farm id x 2^SLOT_BITS + slot. */
export const slotMark = (farmId: number, slot: number): number => SLOT_MARK_BASE + farmId * 2 ** SLOT_BITS + slot;
export const MAX_SLOT_FARM_ID = 2 ** (30 - SLOT_BITS) - 1;
export const MAX_SLOT = 2 ** SLOT_BITS - 1;

/*
 * Table-wide maps keyed by backend mark or slot mark. Marks are store-wide, so one map serves
 * every farm: the kernel finds a set by walking the table's list of sets, so a set per farm
 * would make every load and every change slower as farms are added (10,000 farms with three
 * sets each: 70 s of kernel time for a cold load).
 */
/*
 * Stage chains, shared by the farms: every rule that reads or writes a table-wide map lives in
 * one of these, and farm chains jump to them. The kernel checks each element added to a map
 * against every rule bound to the map (and each new binding against every element), so maps
 * bound from 10,000 farm chains made loads quadratic.
 */
/** Looks up the flow's pin (dsr, stateless_dnat), per flow-key kind. */
export const pinChain = (kind: string): string => `pin_${kind}`;
/** Writes or refreshes the flow's pin. */
export const keepChain = (kind: string): string => `keep_${kind}`;
/** Forgets the flow's pin (its backend is gone). */
export const forgetChain = (kind: string): string => `forget_${kind}`;
/** A consistent-hash table lookup for one hash input. */
export const pickChain = (table: string, input: string): string => `pick_${table}_${input}`;
/** Slot mark (with the farm's id) -> backend mark, counted as a new flow. */
export const SLOT_CHAIN = 'slot_to_backend';
/** stateless_dnat: address (and port) rewrite, per protocol. */
export const rewriteChain = (protocol: string): string => `rewrite_${protocol}`;
/** dsr, stateless_dnat: MAC rewrite and forward, per interface. */
export const sendChain = (ifname: string, ifindex: number): string => `send_${ingressChain(ifname, ifindex).slice('ingress_'.length)}`;
/** nat, dnat: DNAT to the chosen backend, per protocol. */
export const dnatChain = (protocol: string): string => `dnat_${protocol}`;

/** Slot mark -> backend mark: turns a shared table's answer into the farm's backend. */
export const BACKEND_SLOTS_MAP = 'backend_slots';
/** Backend mark -> MAC address, with per-backend packet counters (dsr, stateless_dnat). */
export const BACKEND_MACS_MAP = 'backend_macs';
/** Backend mark -> address (stateless_dnat rewrites; nat and dnat backends keeping the virtual port). */
export const BACKEND_ADDRESSES_MAP = 'backend_addresses';
/** Backend mark -> port (stateless_dnat backends with a port of their own). */
export const BACKEND_PORTS_MAP = 'backend_ports';
/** Backend mark -> address . port (nat and dnat backends with a port of their own). */
export const BACKEND_ENDPOINTS_MAP = 'backend_endpoints';
/**
 * Flow -> backend mark, one map per protocol (each with its idle timeout): the flow's
 * addresses and ports include the VIP and virtual port, so one map holds every farm's pins.
 */
export const flowKind = (protocol: string): string => (protocol === 'all' ? 'any' : protocol);
export const flowsMap = (protocol: string): string => `flows_${flowKind(protocol)}`;
/**
 * Backend marks of every farm (marks are store-wide), with per-element counters: how many
 * new flows each backend was chosen for. One set for the table, not one per farm: the kernel
 * finds a set by name with a walk of the table's set list, so each set per farm makes every
 * load of a big table slower (a cold load of N farms already costs O(N^2) in such walks).
 */
export const NEW_FLOWS_SET = 'backend_new_flows';
/** nat and dnat: backend marks with counters of the packets forwarded to them (see counting.ts). */
export const FORWARDED_SET = 'backend_forwarded';
/** nat and dnat: the filter chain on the forward hook that counts them. */
export const NAT_FORWARD_CHAIN = 'forward';
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

/**
 * Farms in the conntrack NAT modes (nat, dnat) live in a second table of family ip: NAT needs
 * the IP stack's nat hooks, which the netdev family does not have.
 */
export const NAT_TABLE_FAMILY = 'ip';
export const NAT_TABLE_NAME = 'nftfarm';
/** Backend marks of farms in mode nat: connections DNATed to them are also masqueraded. */
export const MASQUERADED_BACKENDS_SET = 'masqueraded_backends';
export const NAT_PREROUTING_CHAIN = 'prerouting';
export const NAT_POSTROUTING_CHAIN = 'postrouting';
/** stateless_dnat: the replies of the farm's backends get the VIP (and virtual port) back here. */
export const farmRepliesChain = (farmId: number): string => `farm_${farmId}_replies`;
/** Backend address . protocol . port -> jump to the replies chain of its stateless_dnat farm. */
export const REPLY_DISPATCH_MAP = 'ipv4_backend_replies';
/** The same for stateless_dnat farms of protocol 'all': backend address -> jump. */
export const REPLY_ANY_DISPATCH_MAP = 'ipv4_backend_any_replies';
