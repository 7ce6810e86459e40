/**
 * The farm service: what the route files share about farms. Looking a farm up by its path,
 * the views GET answers show, the network lookup a write needs (async, before its
 * transaction) and the rules every change of a farm or its backends must pass (inside it).
 * Routes validate their parameters, call these, write the store and answer; nothing here
 * writes.
 */
import type { FastifyInstance } from 'fastify';
import type { Backend, Farm } from '../model/farm.js';
import { dsrBackendPortProblem, dsrFeatureProblem, familyProblem, ipv6FarmProblem, statelessBackendPortProblem, portConflict, type BackendShape } from '../model/rules.js';
import { ipFamily } from '../model/ip.js';
import { MAX_BACKENDS_PER_FARM, NAME_MAX_LENGTH } from '../model/limits.js';
import { notUnicastReason, subnetAddressReason } from '../model/addresses.js';
import { badRequest, notFound } from './zapi.js';
import { FARMNAME_PATTERN } from './farm-params.js';
import { backendView, farmStatus } from './present.js';

/** ZEVENET's routes only match valid farm names; anything else is an unknown route. */
export const farmPathParams = {
  type: 'object',
  required: ['farmname'],
  properties: { farmname: { type: 'string', pattern: FARMNAME_PATTERN, maxLength: NAME_MAX_LENGTH } },
} as const;

/** Loads the farm named in the path or answers 404 with the given message. */
export function requireFarm(app: FastifyInstance, name: string, message = 'Farm not found.'): Farm {
  const farm = app.deps.store.getFarm(name);
  if (!farm) throw notFound(message);
  return farm;
}

export const farmDoesNotExist = (name: string): string => `The farmname ${name} does not exist.`;

/** The farm in the path, or ZEVENET's 404 of the calls that change or list inside a farm. */
export const farmInPath = (app: FastifyInstance, req: { params: { farmname: string } }): Farm =>
  requireFarm(app, req.params.farmname, farmDoesNotExist(req.params.farmname));

/** The short form of a farm that GET /farms and GET /stats/farms list (`stored`: its backends, when already read). */
export function farmSummary(app: FastifyInstance, farm: Farm, stored?: Backend[]) {
  return { farmname: farm.name, profile: farm.profile, status: describeFarm(app, farm, stored).status, vip: farm.vip, vport: farm.vport };
}

/** The farm's live persistence sessions, as GET /farms/{f} and the stats show them. */
export async function sessionViews(app: FastifyInstance, farm: Farm, stored: Backend[]) {
  const sessions = await app.deps.dataplane.sessions(farm.id);
  if (sessions.length === 0) return [];
  const byUid = new Map(stored.map((b) => [b.uid, b]));
  return sessions.flatMap((s) => {
    const b = byUid.get(s.mark);
    // A session of a deleted backend is dead: its packets find no backend.
    return b ? [{ client: s.key, id: b.id, backend_ip: b.ip, backend_port: b.port, session: s.key, ttl: s.expiresMs === null ? null : Math.floor(s.expiresMs / 1000), type: 'dynamic' as const }] : [];
  });
}

/** Everything GET /farms/{f} and the backend calls show about a farm (`stored`: its backends, when already read). */
export function describeFarm(app: FastifyInstance, farm: Farm, stored: Backend[] = app.deps.store.listBackends(farm.id)) {
  const runtime = app.deps.dataplane.farm(farm.id);
  const backends = stored.map((b) => backendView(b, farm, runtime));
  return { backends, status: farmStatus(farm, backends), runtime, stored };
}

/** The addresses a write checks are not the ones its network lookup covered (see checkedWrite). */
export class StaleNetworkCheck extends Error {}

export interface NetworkCheck {
  /** The addresses looked up: a write may only rely on the check for these (see StaleNetworkCheck). */
  vip: string;
  looked: ReadonlySet<string>;
  /** Set when the VIP is in no connected network. */
  problem: string | null;
  interface: string | null;
  network: string | null;
  /** Backend IPs on the network of the VIP's interface. */
  backendsInside: Set<string>;
  /** Addresses looked up (the VIP included) that are the network or broadcast address of their connected network, and why. */
  subnetAddresses: Map<string, string>;
}

/** Looks up (async, read-only) where the VIP and the backends sit on this host's networks. */
export async function checkNetwork(app: FastifyInstance, vip: string, backendIps: string[]): Promise<NetworkCheck> {
  const ips = [...new Set(backendIps)];
  const [connected, ...backendNets] = await app.deps.host.connectedNetworks([vip, ...ips]);
  const subnetAddresses = new Map<string, string>();
  [connected, ...backendNets].forEach((net, i) => {
    const ip = i === 0 ? vip : (ips[i - 1] as string);
    const why = net ? subnetAddressReason(ip, net.network) : null;
    if (why) subnetAddresses.set(ip, why);
  });
  // With BGP on, the router reaches a VIP through this node's address: a VIP outside the
  // connected networks is carried by the interface that leads to its backends (issue 12).
  // (IPv4 VIPs only: BGP does not announce IPv6 VIPs yet.)
  const routed = !connected && app.deps.store.bgpSettings().enabled && ipFamily(vip) === 4;
  const vipNet = connected ?? (routed ? (backendNets.find((n) => n !== null) ?? null) : null);
  if (routed && !vipNet) return { problem: null, interface: null, network: null, backendsInside: new Set(), subnetAddresses, vip, looked: new Set(ips) };
  if (!vipNet) {
    return {
      problem: `The VIP '${vip}' is not in a network connected to this host: nftfarm announces a VIP on the interface whose network holds it.`,
      interface: null,
      network: null,
      backendsInside: new Set(),
      subnetAddresses,
      vip,
      looked: new Set(ips),
    };
  }
  const inside = new Set(ips.filter((_ip, i) => backendNets[i]?.interface === vipNet.interface && backendNets[i]?.network === vipNet.network));
  return { problem: null, interface: vipNet.interface, network: vipNet.network, backendsInside: inside, subnetAddresses, vip, looked: new Set(ips) };
}

/**
 * The rules every change of a farm or of its backends must pass, checked on the merged
 * result (so the order in which fields were set does not matter). Synchronous on purpose:
 * it runs inside the write transaction, after the async network lookups.
 */
export function checkFarmRules(app: FastifyInstance, farm: Farm, backends: BackendShape[], network: NetworkCheck, conflictMessage: typeof portConflict | null = portConflict): void {
  // Another write changed the farm between the lookup and this transaction: look up again.
  if (network.vip !== farm.vip || backends.some((b) => !network.looked.has(b.ip))) throw new StaleNetworkCheck();
  const problem =
    addressProblem(farm.vip, 'VIP', network) ??
    backends.map((b) => addressProblem(b.ip, 'backend', network)).find((p) => p !== null) ??
    backends.map((b) => familyProblem(farm, b)).find((p) => p !== null) ??
    // nat and dnat on an IPv6 VIP are accepted (a farm is created as 'nat' before it is
    // changed): the farm then reports its problem and gets no rules.
    (farm.persistence === 'srcip_srcport' || farm.persistence === 'srcip_dstport' ? ipv6FarmProblem({ ...farm, nattype: 'dsr' }) : null) ??
    (backends.length > MAX_BACKENDS_PER_FARM
      ? `A farm can have at most ${MAX_BACKENDS_PER_FARM} backends: farm '${farm.name}' would have ${backends.length}.`
      : null) ??
    network.problem ??
    backends.map((b) => dsrBackendPortProblem(farm, b) ?? statelessBackendPortProblem(farm, b)).find((p) => p !== null) ??
    dsrFeatureProblem(farm, backends);
  if (problem) throw badRequest(problem);
  if (farm.nattype === 'dsr' || farm.nattype === 'stateless_dnat') {
    const outside = backends.find((b) => !network.backendsInside.has(b.ip));
    if (outside) {
      throw badRequest(
        `The backend IP '${outside.ip}' is not in the network ${network.network} of interface '${network.interface}' that carries the VIP: ` +
          `in nattype '${farm.nattype}' frames are forwarded by MAC address, so backends must be directly connected to that network.`,
      );
    }
  }
  // Only farms on the same VIP can conflict; a backend change cannot (conflictMessage null).
  if (farm.running && conflictMessage) {
    const running = app.deps.store.runningFarmsOnVip(farm.vip).filter((f) => f.id !== farm.id);
    const conflict = conflictMessage(farm, running);
    if (conflict) throw badRequest(conflict);
  }
}

/** A VIP or backend address no host can own (the parameter checks say it first, for new values). */
function addressProblem(ip: string, role: 'VIP' | 'backend', network: NetworkCheck): string | null {
  const why = notUnicastReason(ip) ?? network.subnetAddresses.get(ip) ?? null;
  return why ? `The ${role} address '${ip}' cannot be used: ${why}; a ${role} must be a unicast address.` : null;
}

