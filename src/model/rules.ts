/**
 * Cross-field rules on farms and backends. Pure: they return the problem as a message (the
 * text the API sends) or null, so the API checks the merged result of a change, whichever
 * order the fields were set in.
 */
import type { Backend, Farm } from './farm.js';
import { isSinglePort, parseVport, portSpecsOverlap, singlePortOf } from './ports.js';
import { ipFamily } from './ip.js';
import { NAT_TYPES_IPV6 } from './farm.js';

type FarmShape = Pick<Farm, 'name' | 'vip' | 'vport' | 'protocol' | 'nattype' | 'algorithm'>;
/** A stored backend, or one being added (no id yet). */
export type BackendShape = Pick<Backend, 'ip' | 'port' | 'maxConns'> & { id?: number };

/**
 * DSR only rewrites MAC addresses: the backend receives the packet on the port the client
 * asked for, so a backend port must be empty or that very port.
 */
export function dsrBackendPortProblem(farm: FarmShape, backend: BackendShape): string | null {
  if (farm.nattype !== 'dsr' || backend.port === null) return null;
  const spec = parseVport(farm.vport);
  if (spec && isSinglePort(spec, backend.port)) return null;
  const which = backend.id === undefined ? 'The backend' : `The backend ${backend.id}`;
  return singlePortOf(spec) !== null
    ? `${which} port ${backend.port} differs from the virtual port ${farm.vport}: in DSR mode a backend port must be empty or equal to the virtual port, because only MAC addresses are rewritten.`
    : `${which} port ${backend.port} cannot be used with the virtual port '${farm.vport}': in DSR mode with several virtual ports a backend port must be empty, because only MAC addresses are rewritten.`;
}

/**
 * A farm's VIP and its backends are of one family: nothing translates between IPv4 and
 * IPv6 (no NAT64), so a backend of the other family could never receive the farm's traffic.
 */
export function familyProblem(farm: Pick<Farm, 'vip'>, backend: BackendShape): string | null {
  const vip = ipFamily(farm.vip);
  const ip = ipFamily(backend.ip);
  if (vip === null || ip === null || vip === ip) return null;
  const which = backend.id === undefined ? 'The backend' : `The backend ${backend.id}`;
  return `${which} address '${backend.ip}' is IPv${ip} but the VIP '${farm.vip}' is IPv${vip}: a farm's VIP and backends must be of one family (nftfarm does not translate between IPv4 and IPv6).`;
}

/**
 * What an IPv6 farm cannot have (yet): nat and dnat (no IPv6 NAT table), and persistence keys
 * that pair an IPv6 address with a port (nft 1.0.6 writes such map keys wrongly: see
 * FLOW_KEYS6 in src/reconcile/farm-render.ts).
 */
export function ipv6FarmProblem(farm: Pick<Farm, 'vip' | 'nattype' | 'persistence'>): string | null {
  if (ipFamily(farm.vip) !== 6) return null;
  if (!NAT_TYPES_IPV6.includes(farm.nattype)) {
    return `nattype '${farm.nattype}' does not serve IPv6 VIPs yet: an IPv6 farm takes nattype '${NAT_TYPES_IPV6.join("' or '")}'.`;
  }
  if (farm.persistence === 'srcip_srcport' || farm.persistence === 'srcip_dstport') {
    return `persistence '${farm.persistence}' is not available for IPv6 VIPs (nft 1.0.6 cannot write keys of an IPv6 address and a port): use 'ip', 'srcport' or 'srcmac'.`;
  }
  return null;
}

/**
 * Features the modes without connection tracking (dsr, stateless_dnat) cannot provide,
 * refused rather than silently ignored. (leastconn is accepted there and balances by weight,
 * as in ZEVENET; the farm's dataplane status says so.)
 */
export function dsrFeatureProblem(farm: FarmShape, backends: BackendShape[]): string | null {
  if (farm.nattype !== 'dsr' && farm.nattype !== 'stateless_dnat') return null;
  const limited = backends.find((b) => b.maxConns > 0);
  if (limited) {
    return `The backend${limited.id === undefined ? '' : ` ${limited.id}`} sets max_conns ${limited.maxConns}, which is not available with nattype '${farm.nattype}': without connection tracking the load balancer cannot count connections. Use max_conns 0, or nattype 'nat' or 'dnat'.`;
  }
  return null;
}

/**
 * stateless_dnat restores the virtual port on replies from the backend's port alone: that
 * only works when the farm has one virtual port. SCTP's checksum cannot be fixed in place.
 */
export function statelessBackendPortProblem(farm: FarmShape, backend: BackendShape): string | null {
  if (farm.nattype !== 'stateless_dnat' || backend.port === null) return null;
  const spec = parseVport(farm.vport);
  const which = backend.id === undefined ? 'The backend' : `The backend ${backend.id}`;
  if (farm.protocol === 'sctp') {
    return `${which} port ${backend.port} cannot be used with protocol 'sctp' in nattype 'stateless_dnat': the SCTP checksum cannot be fixed in place. Leave the port empty.`;
  }
  if (singlePortOf(spec) === null) {
    return `${which} port ${backend.port} cannot be used with the virtual port '${farm.vport}': in nattype 'stateless_dnat' a backend port needs a single virtual port, because replies are mapped back to it without connection tracking.`;
  }
  return null;
}

const overlappingProtocols = (a: Farm['protocol'], b: Farm['protocol']): boolean => a === b || a === 'all' || b === 'all';

export interface PortClash {
  other: string;
  /** The shared port(s), as ZEVENET names them. */
  port: string;
}

/** The running farm that already takes this VIP, protocol and port, if any. */
export function findPortClash(farm: FarmShape, running: FarmShape[]): PortClash | null {
  const spec = parseVport(farm.vport);
  if (!spec) return null;
  for (const other of running) {
    if (other.name === farm.name || other.vip !== farm.vip) continue;
    const otherSpec = parseVport(other.vport);
    if (!otherSpec) continue;
    // Every port ('*') is dispatched by the VIP alone, whatever the protocol: one such farm per VIP.
    if (!(spec.any && otherSpec.any) && !overlappingProtocols(farm.protocol, other.protocol)) continue;
    const overlap = portSpecsOverlap(spec, otherSpec);
    if (overlap === null) continue;
    const port = overlap === 'any' ? farm.vport : overlap.low === overlap.high ? `${overlap.low}` : `${overlap.low}:${overlap.high}`;
    return { other: other.name, port };
  }
  return null;
}

/** ZEVENET's answer when a change would make two running farms overlap. */
export function portConflict(farm: FarmShape, running: FarmShape[]): string | null {
  const clash = findPortClash(farm, running);
  return clash
    ? `The '${farm.vip}' ip and '${clash.port}' port are being used for another farm. This farm should be stopped before modifying it (the farm '${clash.other}' uses them)`
    : null;
}

/** ZEVENET's answer when starting a farm whose VIP and port another running farm uses. */
export function startConflict(farm: FarmShape, running: FarmShape[]): string | null {
  const clash = findPortClash(farm, running);
  return clash ? `There is another farm using the ip '${farm.vip}' and the port '${clash.port}' (the farm '${clash.other}')` : null;
}
