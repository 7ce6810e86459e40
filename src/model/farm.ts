/** Plain data types shared by the store, the API and the reconciler. No I/O here. */

export const PROTOCOLS = ['tcp', 'udp', 'sctp', 'all'] as const;
export type Protocol = (typeof PROTOCOLS)[number];

export const NAT_TYPES = ['nat', 'dnat', 'dsr', 'stateless_dnat'] as const;
export type NatType = (typeof NAT_TYPES)[number];
/** The modes that serve IPv6 VIPs (all of them). */
export const NAT_TYPES_IPV6: readonly NatType[] = ['nat', 'dnat', 'dsr', 'stateless_dnat'];

export const ALGORITHMS = ['weight', 'roundrobin', 'hash_srcip', 'hash_srcip_srcport', 'symhash', 'leastconn'] as const;
export type Algorithm = (typeof ALGORITHMS)[number];

/** Stored spellings; '' means no persistence. `ip` is accepted on input as an alias of `srcip`. */
export const PERSISTENCE_MODES = ['', 'srcip', 'srcport', 'srcmac', 'srcip_srcport', 'srcip_dstport'] as const;
export type Persistence = (typeof PERSISTENCE_MODES)[number];

export type Maintenance = 'none' | 'drain' | 'cut';

/**
 * The data plane's numbering (reconcile/names.ts): farm slots 1 to 2^19 - 1 (a farm's region
 * of the selection map sits beside them in a 31-bit key), backend marks below 2^31.
 */
export const MAX_FARM_SLOT = 2 ** 19 - 1;
export const MAX_BACKEND_MARK = 2 ** 31 - 1;

export interface Farm {
  id: number;
  name: string;
  profile: 'l4xnat';
  vip: string;
  vport: string;
  protocol: Protocol;
  nattype: NatType;
  algorithm: Algorithm;
  persistence: Persistence;
  ttl: number;
  running: boolean;
  generation: number;
  /** Data-plane slot: names the farm's kernel objects; reused after the farm is deleted. */
  slot: number;
}

export interface Backend {
  /** Store-wide, never reused: the data plane's mark for this backend. */
  uid: number;
  farmId: number;
  /** ZAPI id within the farm. */
  id: number;
  ip: string;
  port: number | null;
  weight: number;
  priority: number;
  maxConns: number;
  maintenance: Maintenance;
}

export interface HealthCheck {
  name: string;
  description: string;
  command: string;
  interval: number;
  timeout: number;
  /** Consecutive failed checks before an up backend is marked down. */
  fall: number;
  /** Consecutive passed checks before a down backend is up again. */
  rise: number;
  cutConns: boolean;
  log: boolean;
  backendAlias: boolean;
  template: boolean;
}

export type FarmStatus = 'down' | 'critical' | 'problem' | 'maintenance' | 'up';
export type BackendStatus = 'up' | 'down' | 'maintenance';
