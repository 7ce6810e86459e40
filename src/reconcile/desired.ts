/**
 * What the data plane should do, derived from the store and the facts of the host (its
 * interfaces and the MAC addresses of backends). Pure: the same inputs give the same state,
 * on every node.
 */
import type { Algorithm, Backend, Farm, HealthCheck, NatType, Persistence, Protocol } from '../model/farm.js';
import { normalizeRanges, parseVport, type PortRange } from '../model/ports.js';
import type { Snapshot } from '../store/store.js';
import { findConnectedInterface } from '../dataplane/netlink/ipv4.js';
import { MAX_SLOT, MAX_SLOT_FARM_ID } from './names.js';
import { statelessBackendPortProblem } from '../model/rules.js';
import type { HostInterface } from '../dataplane/netlink/host-network.js';

/**
 * serving: receives new flows. standby: a lower priority is up, keeps its pinned flows.
 * draining: maintenance drain, or a failed health check without cut_conns: keeps its pinned
 * flows and sessions. excluded: gets nothing, its pinned flows are dropped (maintenance cut,
 * a failed health check with cut_conns, or no MAC address to send to).
 */
export type BackendRole = 'serving' | 'standby' | 'draining' | 'excluded';

export interface DesiredBackend extends Pick<Backend, 'uid' | 'id' | 'ip' | 'port' | 'weight' | 'priority' | 'maxConns'> {
  mac: string | null;
  role: BackendRole;
  /** Connections conntrack tracks for it: only for leastconn farms in nat and dnat, else null. */
  connections: number | null;
  /** Why an excluded backend gets nothing, for the API. */
  reason: string | null;
  /** Its farm's health check says it is down (whatever its role). */
  checkFailing?: boolean;
}

export interface VipInterface {
  name: string;
  index: number;
  mac: string;
}

export interface DesiredFarm {
  farmId: number;
  name: string;
  generation: number;
  running: boolean;
  nattype: NatType;
  vip: string;
  protocol: Protocol;
  /** null: every port ('*'). */
  ports: PortRange[] | null;
  algorithm: Algorithm;
  persistence: Persistence;
  ttl: number;
  iface: VipInterface | null;
  /** The VIP is already an address of this host: the kernel answers ARP, no proxy needed. */
  vipIsLocal: boolean;
  backends: DesiredBackend[];
  /** Why a running farm gets no rules, or null when it is rendered. */
  problem: string | null;
}

export interface Announcement {
  vip: string;
  iface: VipInterface;
}

export interface DesiredState {
  generation: number;
  farms: DesiredFarm[];
  /** VIPs nftfarm answers ARP for (proxy entries), one per VIP. */
  announcements: Announcement[];
  /**
   * Interfaces through which this host routes farm traffic (nat, dnat, stateless_dnat): they
   * need forwarding on and, as traffic leaves by the interface it came in, no ICMP redirects.
   */
  routedInterfaces: VipInterface[];
}

export interface HostFacts {
  interfaces: HostInterface[];
  /** The MAC to send to for `ip` on interface `ifindex`, or null while unknown. */
  macOf(ifindex: number, ip: string): string | null;
  /**
   * Connections conntrack tracks per backend mark (nat and dnat farms), for leastconn and
   * max_conns; absent when not counted.
   */
  connections?: ReadonlyMap<number, number>;
  /** What the health checks say about backend `uid`; null (or absent) while unknown or unchecked. */
  healthOf?(uid: number): BackendHealth | null;
}

/** A backend's health as its farm's check last decided it. */
export interface BackendHealth {
  up: boolean;
  /** ISO time of the last transition. */
  since: string;
  /** The check result that caused it. */
  reason: string;
}

/** Modes that send frames to the backends' MAC addresses from netdev ingress. */
export const sendsToBackendMacs = (nattype: NatType): boolean => nattype === 'dsr' || nattype === 'stateless_dnat';
/** Modes in which conntrack tracks (and pins) every connection. */
export const usesConntrack = (nattype: NatType): boolean => nattype === 'nat' || nattype === 'dnat';

/** Renders the farms' lifecycle and priorities into what the kernel must do. */
export function desiredState(snapshot: Snapshot, facts: HostFacts): DesiredState {
  const localAddresses = new Set(facts.interfaces.flatMap((i) => i.addresses.map((a) => a.address)));
  // Issue 12: with BGP on (snapshot.routedVips), BIRD announces the VIPs (src/cluster): no
  // proxy ARP for them, and a VIP outside the connected networks takes its backends' interface.
  const routedVips = snapshot.routedVips === true;
  const farms = snapshot.farms.map(({ farm, backends, healthCheck }) => desiredFarm(farm, backends, healthCheck, facts, localAddresses, routedVips));
  refuseOverlappingReplies(farms);
  const announcements = new Map<string, Announcement>();
  for (const f of farms) {
    if (!routedVips && f.problem === null && f.running && f.iface && !f.vipIsLocal && !announcements.has(f.vip)) {
      announcements.set(f.vip, { vip: f.vip, iface: f.iface });
    }
  }
  const routed = new Map<string, VipInterface>();
  for (const f of farms) {
    if (f.problem !== null || !f.running || !f.iface || f.nattype === 'dsr') continue;
    routed.set(f.iface.name, f.iface);
    for (const b of f.backends) {
      const match = findConnectedInterface(facts.interfaces, b.ip);
      if (match) routed.set(match.iface.name, { name: match.iface.name, index: match.iface.index, mac: match.iface.mac });
    }
  }
  return {
    generation: snapshot.generation,
    farms,
    announcements: [...announcements.values()].sort((a, b) => (a.vip < b.vip ? -1 : 1)),
    routedInterfaces: [...routed.values()].sort((a, b) => (a.name < b.name ? -1 : 1)),
  };
}

/**
 * stateless_dnat recognises a backend's replies by its address, protocol and source port
 * alone: two running farms cannot claim the same ones. The farm with the higher id gets a
 * problem (and no rules) instead of a transaction the kernel would refuse.
 */
function refuseOverlappingReplies(farms: DesiredFarm[]): void {
  const claims: { ip: string; protocol: Protocol; low: number; high: number; farm: string }[] = [];
  const overlaps = (a: { ip: string; protocol: Protocol; low: number; high: number }, b: typeof a) =>
    a.ip === b.ip && (a.protocol === b.protocol || a.protocol === 'all' || b.protocol === 'all') && a.low <= b.high && b.low <= a.high;
  for (const f of [...farms].sort((a, b) => a.farmId - b.farmId)) {
    if (f.nattype !== 'stateless_dnat' || !f.running || f.problem !== null) continue;
    const mine = replyClaims(f);
    const clash = mine.flatMap((m) => claims.filter((c) => overlaps(m, c)).map((c) => ({ m, c })))[0];
    if (clash) {
      f.problem = `backend ${clash.m.ip} (${clash.m.protocol} ${clash.m.low}-${clash.m.high}) already answers for the stateless_dnat farm ${clash.c.farm}: its replies could not be told apart`;
      continue;
    }
    claims.push(...mine.map((m) => ({ ...m, farm: f.name })));
  }
}

/** The address, protocol and source ports of the replies of a stateless_dnat farm's backends. */
export function replyClaims(f: DesiredFarm): { ip: string; protocol: Protocol; low: number; high: number }[] {
  const ranges = f.ports ?? [{ low: 0, high: 65535 }];
  return f.backends.flatMap((b) =>
    f.protocol === 'all'
      ? [{ ip: b.ip, protocol: f.protocol, low: 0, high: 65535 }]
      : b.port !== null
        ? [{ ip: b.ip, protocol: f.protocol, low: b.port, high: b.port }]
        : ranges.map((r) => ({ ip: b.ip, protocol: f.protocol, low: r.low, high: r.high })),
  );
}

function desiredFarm(farm: Farm, backends: Backend[], check: HealthCheck | null, facts: HostFacts, localAddresses: Set<string>, routedVips: boolean): DesiredFarm {
  // Routed VIPs (BGP): the router sends VIP traffic to this node's address; the interface that
  // leads to the (first connected) backend carries the farm.
  const match =
    findConnectedInterface(facts.interfaces, farm.vip) ??
    (routedVips ? (backends.map((b) => findConnectedInterface(facts.interfaces, b.ip)).find((m) => m !== null) ?? null) : null);
  const iface = match ? { name: match.iface.name, index: match.iface.index, mac: match.iface.mac } : null;
  const spec = parseVport(farm.vport);
  let problem: string | null = null;
  if (!iface) {
    problem = routedVips
      ? `the VIP ${farm.vip} is in no connected network and no backend is on one yet: with BGP, the farm takes the interface that leads to its backends`
      : `no up interface has a network holding the VIP ${farm.vip}; the farm has no rules until one does`;
  } else if (!spec) {
    problem = `the virtual port '${farm.vport}' is not valid`;
  } else if (backends.some((b) => statelessBackendPortProblem(farm, b) !== null)) {
    // The API refuses these; a store written otherwise (an import) still gets no broken rules.
    problem = backends.map((b) => statelessBackendPortProblem(farm, b)).find((p) => p !== null)!;
  } else if (farm.id > MAX_SLOT_FARM_ID || backends.some((b) => b.id > MAX_SLOT)) {
    // Slot marks hold the farm id and the backend id in 30 bits (see names.ts).
    problem = `the data plane numbers farms up to ${MAX_SLOT_FARM_ID} and backends up to ${MAX_SLOT} per farm`;
  }
  return {
    farmId: farm.id,
    name: farm.name,
    generation: farm.generation,
    running: farm.running,
    nattype: farm.nattype,
    vip: farm.vip,
    protocol: farm.protocol,
    ports: spec && !spec.any ? normalizeRanges(spec.ranges) : null,
    algorithm: farm.algorithm,
    persistence: farm.persistence,
    ttl: farm.ttl,
    iface,
    vipIsLocal: localAddresses.has(farm.vip),
    // Only DSR and stateless_dnat send frames to backend MACs; the others let the kernel route.
    backends: assignRoles(
      backends,
      sendsToBackendMacs(farm.nattype) ? iface : null,
      check,
      facts,
      usesConntrack(farm.nattype) ? facts.connections : undefined,
      farm.algorithm === 'leastconn' && usesConntrack(farm.nattype),
    ),
    problem,
  };
}

function assignRoles(
  backends: Backend[],
  iface: VipInterface | null,
  check: HealthCheck | null,
  facts: HostFacts,
  connections: ReadonlyMap<number, number> | undefined,
  leastconn: boolean,
): DesiredBackend[] {
  const out: DesiredBackend[] = backends.map((b) => {
    const mac = iface ? facts.macOf(iface.index, b.ip) : null;
    // Only the check linked now counts: an unlinked check's last word is forgotten.
    const health = check ? (facts.healthOf?.(b.uid) ?? null) : null;
    const failing = health !== null && !health.up;
    let role: BackendRole = 'serving';
    let reason: string | null = null;
    // Maintenance first: a passing check never puts a backend in maintenance back.
    if (b.maintenance === 'cut') {
      role = 'excluded';
      reason = 'maintenance (cut)';
    } else if (iface && mac === null) {
      role = 'excluded';
      reason = `waiting for the MAC address of ${b.ip} on ${iface.name} (ARP)`;
    } else if (b.maintenance === 'drain') {
      role = 'draining';
    } else if (failing) {
      role = check?.cutConns ? 'excluded' : 'draining';
      reason = `health check failing since ${health.since}: ${health.reason}`;
    } else if (connections && b.maxConns > 0 && (connections.get(b.uid) ?? 0) >= b.maxConns) {
      // Counted every second: a cap on new flows, the established ones continue.
      role = 'draining';
      reason = `max_conns reached (${connections.get(b.uid)} of ${b.maxConns} connections)`;
    }
    const d: DesiredBackend = {
      uid: b.uid,
      id: b.id,
      ip: b.ip,
      port: b.port,
      weight: b.weight,
      priority: b.priority,
      maxConns: b.maxConns,
      mac,
      role,
      reason,
      connections: null,
    };
    if (failing) d.checkFailing = true;
    return d;
  });
  // Only the lowest priority value that has a backend able to serve receives new flows.
  const best = Math.min(...out.filter((b) => b.role === 'serving').map((b) => b.priority));
  for (const b of out) if (b.role === 'serving' && b.priority !== best) b.role = 'standby';
  if (leastconn) for (const b of out) b.connections = connections?.get(b.uid) ?? 0;
  return out;
}
