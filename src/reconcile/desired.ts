/**
 * What the data plane should do, derived from the store and the facts of the host (its
 * interfaces and the MAC addresses of backends). Pure: the same inputs give the same state,
 * on every node.
 */
import type { Algorithm, Backend, Farm, HealthCheck, NatType, Persistence, Protocol } from '../model/farm.js';
import { normalizeRanges, parseVport, type PortRange } from '../model/ports.js';
import type { Snapshot } from '../store/store.js';
import { findConnectedInterface } from '../dataplane/netlink/ipv4.js';
import type { HostInterface } from '../dataplane/netlink/host-network.js';

/**
 * serving: receives new flows. standby: a lower priority is up, keeps its pinned flows.
 * draining: maintenance drain, or a failed health check without cut_conns: keeps its pinned
 * flows and sessions. excluded: gets nothing, its pinned flows are dropped (maintenance cut,
 * a failed health check with cut_conns, or no MAC address to send to).
 */
export type BackendRole = 'serving' | 'standby' | 'draining' | 'excluded';

export interface DesiredBackend {
  uid: number;
  id: number;
  ip: string;
  port: number | null;
  weight: number;
  priority: number;
  mac: string | null;
  role: BackendRole;
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
}

export interface HostFacts {
  interfaces: HostInterface[];
  /** The MAC to send to for `ip` on interface `ifindex`, or null while unknown. */
  macOf(ifindex: number, ip: string): string | null;
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

export const SUPPORTED_NAT_TYPES: readonly NatType[] = ['dsr'];

/** Renders the farms' lifecycle and priorities into what the kernel must do. */
export function desiredState(snapshot: Snapshot, facts: HostFacts): DesiredState {
  const localAddresses = new Set(facts.interfaces.flatMap((i) => i.addresses.map((a) => a.address)));
  const farms = snapshot.farms.map(({ farm, backends, healthCheck }) => desiredFarm(farm, backends, healthCheck, facts, localAddresses));
  const announcements = new Map<string, Announcement>();
  for (const f of farms) {
    if (f.problem === null && f.running && f.iface && !f.vipIsLocal && !announcements.has(f.vip)) {
      announcements.set(f.vip, { vip: f.vip, iface: f.iface });
    }
  }
  return {
    generation: snapshot.generation,
    farms,
    announcements: [...announcements.values()].sort((a, b) => (a.vip < b.vip ? -1 : 1)),
  };
}

function desiredFarm(farm: Farm, backends: Backend[], check: HealthCheck | null, facts: HostFacts, localAddresses: Set<string>): DesiredFarm {
  const match = findConnectedInterface(facts.interfaces, farm.vip);
  const iface = match ? { name: match.iface.name, index: match.iface.index, mac: match.iface.mac } : null;
  const spec = parseVport(farm.vport);
  let problem: string | null = null;
  if (!SUPPORTED_NAT_TYPES.includes(farm.nattype)) {
    problem = `nattype '${farm.nattype}' is not implemented by this nftfarm data plane yet (supported: ${SUPPORTED_NAT_TYPES.join(', ')}); the farm has no rules`;
  } else if (!iface) {
    problem = `no up interface has a network holding the VIP ${farm.vip}; the farm has no rules until one does`;
  } else if (!spec) {
    problem = `the virtual port '${farm.vport}' is not valid`;
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
    // Only DSR sends frames to backend MACs; other modes do not need them resolved.
    backends: assignRoles(backends, farm.nattype === 'dsr' ? iface : null, check, facts),
    problem,
  };
}

function assignRoles(backends: Backend[], iface: VipInterface | null, check: HealthCheck | null, facts: HostFacts): DesiredBackend[] {
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
    }
    const d: DesiredBackend = { uid: b.uid, id: b.id, ip: b.ip, port: b.port, weight: b.weight, priority: b.priority, mac, role, reason };
    if (failing) d.checkFailing = true;
    return d;
  });
  // Only the lowest priority value that has a backend able to serve receives new flows.
  const best = Math.min(...out.filter((b) => b.role === 'serving').map((b) => b.priority));
  for (const b of out) if (b.role === 'serving' && b.priority !== best) b.role = 'standby';
  return out;
}
