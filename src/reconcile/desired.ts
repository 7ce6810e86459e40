/**
 * What the data plane should do, derived from the store and the facts of the host (its
 * interfaces, the MAC addresses of backends, health verdicts, connection counts). Pure: the
 * same inputs give the same state, on every node. One farm at a time (`desiredFarm`), so a
 * change costs what it changes; the few rules that span farms (two farms may not claim the
 * same dispatch key, nor the same stateless_dnat replies) live in claims.ts, which the
 * reconciler keeps up to date incrementally.
 */
import type { Algorithm, Backend, HealthCheck, NatType, Persistence, Protocol } from '../model/farm.js';
import { normalizeRanges, parseVport, type PortRange } from '../model/ports.js';
import type { FarmConfig, Snapshot } from '../store/store.js';
import { findConnectedInterface } from '../dataplane/netlink/ipv4.js';
import { MAX_BACKEND_MARK, MAX_FARM_SLOT } from './names.js';
import { ipv6FarmProblem, statelessBackendPortProblem } from '../model/rules.js';
import { FarmClaims } from './claims.js';
import type { HostInterface } from '../dataplane/netlink/host-network.js';
import { regionSize } from './selection.js';
import { isIpv6Text } from '../model/ip.js';

/**
 * serving: receives new flows. standby: a lower priority is up, keeps its pinned flows.
 * draining: maintenance drain, or a failed health check without cut_conns: keeps its pinned
 * flows and sessions. excluded: gets nothing, its pinned flows are dropped (maintenance cut,
 * a failed health check with cut_conns, or no MAC address to send to).
 */
export type BackendRole = 'serving' | 'standby' | 'draining' | 'excluded';

export interface DesiredBackend extends Pick<Backend, 'uid' | 'id' | 'ip' | 'port' | 'weight' | 'priority' | 'maxConns'> {
  /** What names it on every node (selection tables): address and port. */
  identity: string;
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
  /** Data-plane slot: names the farm's kernel objects and its selection region. */
  slot: number;
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
  /** nftfarm answers ARP for the VIP (proxy entry, guard rule): not when local, nor when BGP routes it here. */
  proxied: boolean;
  /** Buckets of the farm's selection region (from the number of backends configured). */
  regionSize: number;
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
  /**
   * BGP announces the VIPs (src/cluster): no proxy ARP for them, and a VIP outside the
   * connected networks takes the interface that leads to its backends.
   */
  routedVips?: boolean;
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
/** A farm that gets rules in the kernel. */
export const isRendered = (f: DesiredFarm): boolean => f.running && f.problem === null;

/** The whole desired state at once (a full pass, `nftfarm rules`, the golden tests). */
export function desiredState(snapshot: Snapshot, facts: HostFacts): DesiredState {
  const local = localAddressesOf(facts.interfaces);
  const withRoutes = snapshot.routedVips ? { ...facts, routedVips: true } : facts;
  const derived = snapshot.farms.map((config) => desiredFarm(config, withRoutes, local));
  const claims = new FarmClaims();
  for (const f of derived) claims.set(f);
  const farms = derived.map((f) => {
    const problem = claims.problemOf(f);
    return problem ? { ...f, problem } : f;
  });
  return { generation: snapshot.generation, farms, announcements: announcementsOf(farms), routedInterfaces: routedInterfacesOf(farms, facts.interfaces) };
}

export const localAddressesOf = (interfaces: readonly HostInterface[]): Set<string> =>
  new Set(interfaces.flatMap((i) => i.addresses.map((a) => a.address)));

/** One VIP announcement per VIP of a rendered farm that needs one. */
export function announcementsOf(farms: Iterable<DesiredFarm>): Announcement[] {
  const out = new Map<string, Announcement>();
  for (const f of farms) if (isRendered(f) && f.iface && f.proxied && !out.has(f.vip)) out.set(f.vip, { vip: f.vip, iface: f.iface });
  return [...out.values()].sort((a, b) => (a.vip < b.vip ? -1 : 1));
}

/** Where nat, dnat and stateless_dnat traffic comes in and goes out. */
export function routedInterfacesOf(farms: Iterable<DesiredFarm>, interfaces: readonly HostInterface[]): VipInterface[] {
  const routed = new Map<string, VipInterface>();
  for (const f of farms) {
    if (!isRendered(f) || !f.iface || f.nattype === 'dsr') continue;
    routed.set(f.iface.name, f.iface);
    for (const b of f.backends) {
      const match = findConnectedInterface([...interfaces], b.ip);
      if (match) routed.set(match.iface.name, { name: match.iface.name, index: match.iface.index, mac: match.iface.mac });
    }
  }
  return [...routed.values()].sort((a, b) => (a.name < b.name ? -1 : 1));
}

/**
 * One farm's desired state, from its configuration and the host's facts. Its problem says why
 * a running farm gets no rules; the claims across farms are judged apart (FarmClaims).
 */
export function desiredFarm(config: FarmConfig, facts: HostFacts, localAddresses: ReadonlySet<string>): DesiredFarm {
  const { farm, backends, healthCheck } = config;
  // Routed VIPs (BGP, src/cluster): the router sends VIP traffic to this node's address; the
  // interface that leads to the (first connected) backend carries the farm.
  // BGP announces IPv4 VIPs only: an IPv6 VIP stays on its connected network, announced by proxy NDP.
  const routed = facts.routedVips === true && !isIpv6Text(farm.vip);
  const match =
    findConnectedInterface(facts.interfaces, farm.vip) ??
    (routed ? (backends.map((b) => findConnectedInterface(facts.interfaces, b.ip)).find((m) => m !== null) ?? null) : null);
  const iface = match ? { name: match.iface.name, index: match.iface.index, mac: match.iface.mac } : null;
  const spec = parseVport(farm.vport);
  let problem: string | null = null;
  if (!iface) {
    problem = routed
      ? `the VIP ${farm.vip} is in no connected network and no backend is on one yet: with BGP, the farm takes the interface that leads to its backends`
      : `no up interface has a network holding the VIP ${farm.vip}; the farm has no rules until one does`;
  } else if (!spec) {
    problem = `the virtual port '${farm.vport}' is not valid`;
  } else if (backends.some((b) => statelessBackendPortProblem(farm, b) !== null)) {
    // The API refuses these; a store written otherwise (an import) still gets no broken rules.
    problem = backends.map((b) => statelessBackendPortProblem(farm, b)).find((p) => p !== null)!;
  } else if (ipv6FarmProblem(farm)) {
    // The API refuses these; a store written otherwise (an import) still gets no broken rules.
    problem = ipv6FarmProblem(farm)!;
  } else if (farm.slot > MAX_FARM_SLOT || backends.some((b) => b.uid > MAX_BACKEND_MARK)) {
    problem = `the data plane numbers at most ${MAX_FARM_SLOT + 1} farms and ${MAX_BACKEND_MARK} backends`;
  }
  return {
    farmId: farm.id,
    slot: farm.slot,
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
    proxied: !localAddresses.has(farm.vip) && !routed,
    regionSize: regionSize(backends.length),
    // Only DSR and stateless_dnat send frames to backend MACs; the others let the kernel route.
    backends: assignRoles(
      backends,
      sendsToBackendMacs(farm.nattype) ? iface : null,
      healthCheck,
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
      identity: `${b.ip}:${b.port ?? ''}`,
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
