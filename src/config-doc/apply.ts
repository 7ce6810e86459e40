/**
 * Makes the store equal a validated document: a plan (what would be created, changed,
 * deleted) and its application in one store transaction. Farms are matched by name, health
 * checks by name, backends by address and port within their farm: an unchanged backend keeps
 * its row (its mark, so its pinned flows), a changed one is updated in place, and a document
 * that already matches the store changes nothing at all (no write, no generation bump).
 */
import type { Store } from '../store/store.js';
import type { Backend, Farm, HealthCheck } from '../model/farm.js';
import type { BgpSettings } from '../cluster/bgp-settings.js';
import type { ConfigDocument, DocBackend, DocFarm, DocHealthCheck } from './document.js';

export interface PlanEntry {
  kind: 'farm' | 'backend' | 'health_check' | 'bgp';
  /** farm name, check name, or "farm ip:port" for a backend. */
  name: string;
  /** For changes: the fields that differ. */
  fields?: string[];
}

export interface Plan {
  create: PlanEntry[];
  change: PlanEntry[];
  delete: PlanEntry[];
}

export const planIsEmpty = (p: Plan): boolean => p.create.length + p.change.length + p.delete.length === 0;

const FARM_FIELDS: [keyof DocFarm, keyof Farm][] = [
  ['vip', 'vip'],
  ['vport', 'vport'],
  ['protocol', 'protocol'],
  ['nattype', 'nattype'],
  ['algorithm', 'algorithm'],
  ['persistence', 'persistence'],
  ['ttl', 'ttl'],
  ['running', 'running'],
];
const BACKEND_FIELDS: [keyof DocBackend, keyof Backend][] = [
  ['weight', 'weight'],
  ['priority', 'priority'],
  ['max_conns', 'maxConns'],
  ['maintenance', 'maintenance'],
];
const CHECK_FIELDS: [keyof DocHealthCheck, keyof HealthCheck][] = [
  ['description', 'description'],
  ['command', 'command'],
  ['interval', 'interval'],
  ['timeout', 'timeout'],
  ['fall', 'fall'],
  ['rise', 'rise'],
  ['cut_conns', 'cutConns'],
  ['log', 'log'],
  ['backend_alias', 'backendAlias'],
];

const backendName = (farm: string, b: { ip: string; port: number | null }) => `${farm} ${b.ip}${b.port === null ? '' : `:${b.port}`}`;
const sameTarget = (a: { ip: string; port: number | null }, b: { ip: string; port: number | null }) => a.ip === b.ip && a.port === b.port;

/** The BGP settings the document asks for, keeping this node's router id. */
export function documentBgp(doc: ConfigDocument, current: BgpSettings): BgpSettings {
  const b = doc.bgp;
  return {
    enabled: b.enabled,
    speaker: b.speaker,
    asn: b.asn,
    routerId: current.routerId,
    holdTime: b.hold_time,
    neighbors: b.neighbors.map((n) => ({ address: n.address, asn: n.asn })),
    drainTime: b.drain_time,
    med: b.med,
    communities: [...b.communities],
    gracefulRestart: b.graceful_restart,
  };
}

/** What applying `doc` would do, plus what the store refuses (a template's command changed). */
export function planDocument(store: Store, doc: ConfigDocument): { plan: Plan; problems: string[] } {
  const plan: Plan = { create: [], change: [], delete: [] };
  const problems: string[] = [];
  const snapshot = store.snapshot();
  const checks = new Map(store.listHealthChecks().map((c) => [c.name, c]));

  const wantedChecks = new Set(doc.health_checks.map((c) => c.name));
  for (const c of doc.health_checks) {
    const current = checks.get(c.name);
    if (!current) {
      plan.create.push({ kind: 'health_check', name: c.name });
      continue;
    }
    if (current.template && (c.command !== current.command || c.description !== current.description)) {
      problems.push(`health check '${c.name}' is a built-in template: its command and description cannot change.`);
    }
    const fields = CHECK_FIELDS.filter(([d, m]) => c[d] !== current[m]).map(([d]) => d);
    if (fields.length > 0) plan.change.push({ kind: 'health_check', name: c.name, fields });
  }
  for (const c of checks.values()) if (!c.template && !wantedChecks.has(c.name)) plan.delete.push({ kind: 'health_check', name: c.name });

  const stored = new Map(snapshot.farms.map((f) => [f.farm.name, f]));
  const wantedFarms = new Set(doc.farms.map((f) => f.farmname));
  for (const { farm } of snapshot.farms) if (!wantedFarms.has(farm.name)) plan.delete.push({ kind: 'farm', name: farm.name });
  for (const f of doc.farms) {
    const current = stored.get(f.farmname);
    if (!current) {
      plan.create.push({ kind: 'farm', name: f.farmname });
      for (const b of f.backends) plan.create.push({ kind: 'backend', name: backendName(f.farmname, b) });
      continue;
    }
    const fields = FARM_FIELDS.filter(([d, m]) => f[d] !== current.farm[m]).map(([d]) => d as string);
    if ((current.healthCheck?.name ?? null) !== f.farmguardian) fields.push('farmguardian');
    if (fields.length > 0) plan.change.push({ kind: 'farm', name: f.farmname, fields });
    for (const b of current.backends) {
      if (!f.backends.some((d) => sameTarget(d, b))) plan.delete.push({ kind: 'backend', name: backendName(f.farmname, b) });
    }
    for (const d of f.backends) {
      const b = current.backends.find((x) => sameTarget(x, d));
      if (!b) {
        plan.create.push({ kind: 'backend', name: backendName(f.farmname, d) });
        continue;
      }
      const changed = BACKEND_FIELDS.filter(([k, m]) => d[k] !== b[m]).map(([k]) => k as string);
      if (changed.length > 0) plan.change.push({ kind: 'backend', name: backendName(f.farmname, d), fields: changed });
    }
  }

  const bgpBefore = store.bgpSettings();
  const bgpAfter = documentBgp(doc, bgpBefore);
  const bgpFields = (Object.keys(bgpAfter) as (keyof BgpSettings)[]).filter((k) => JSON.stringify(bgpAfter[k]) !== JSON.stringify(bgpBefore[k]));
  if (bgpFields.length > 0) plan.change.push({ kind: 'bgp', name: 'bgp', fields: bgpFields.map(snake) });
  return { plan, problems };
}

const snake = (k: string): string => k.replace(/[A-Z]/g, (c) => `_${c.toLowerCase()}`);

/**
 * Applies the document in one store transaction (plan computed inside it, so nothing can slip
 * in between). Returns the plan it carried out; throws ApplyRefused when the store refuses.
 */
export function applyDocument(store: Store, doc: ConfigDocument): Plan {
  const first = planDocument(store, doc);
  if (first.problems.length > 0) throw new ApplyRefused(first.problems);
  if (planIsEmpty(first.plan)) return first.plan;
  return store.write((generation) => {
    const { plan, problems } = planDocument(store, doc);
    if (problems.length > 0) throw new ApplyRefused(problems);
    const checks = new Map(store.listHealthChecks().map((c) => [c.name, c]));
    for (const c of doc.health_checks) {
      const fields = {
        description: c.description,
        command: c.command,
        interval: c.interval,
        timeout: c.timeout,
        fall: c.fall,
        rise: c.rise,
        cutConns: c.cut_conns,
        log: c.log,
        backendAlias: c.backend_alias,
      };
      const current = checks.get(c.name);
      if (!current) store.insertHealthCheck(c.name, fields);
      else if (CHECK_FIELDS.some(([d, m]) => c[d] !== current[m])) store.updateHealthCheck(c.name, fields, generation);
    }

    const wanted = new Map(doc.farms.map((f) => [f.farmname, f]));
    for (const farm of store.listFarms()) if (!wanted.has(farm.name)) store.deleteFarm(farm.id);
    for (const f of doc.farms) {
      const fields = {
        vip: f.vip,
        vport: f.vport,
        protocol: f.protocol as Farm['protocol'],
        nattype: f.nattype as Farm['nattype'],
        algorithm: f.algorithm as Farm['algorithm'],
        persistence: f.persistence as Farm['persistence'],
        ttl: f.ttl,
        running: f.running,
      };
      let farm = store.getFarm(f.farmname);
      if (!farm) farm = store.insertFarm({ name: f.farmname, ...fields }, generation);
      else if (FARM_FIELDS.some(([d, m]) => f[d] !== farm![m])) farm = store.updateFarm(farm.id, fields, generation);
      const backends = store.listBackends(farm.id);
      for (const b of backends) if (!f.backends.some((d) => sameTarget(d, b))) store.deleteBackend(farm.id, b.id, generation);
      for (const d of f.backends) {
        const b = backends.find((x) => sameTarget(x, d));
        if (!b) {
          const added = store.insertBackend(farm.id, { ip: d.ip, port: d.port, weight: d.weight, priority: d.priority, maxConns: d.max_conns }, generation);
          if (d.maintenance !== 'none') store.updateBackend(farm.id, added.id, { maintenance: d.maintenance }, generation);
        } else if (BACKEND_FIELDS.some(([k, m]) => d[k] !== b[m])) {
          store.updateBackend(farm.id, b.id, { weight: d.weight, priority: d.priority, maxConns: d.max_conns, maintenance: d.maintenance }, generation);
        }
      }
      const linked = store.farmCheckName(farm.id);
      if (linked !== f.farmguardian) {
        if (linked !== null) store.unlinkHealthCheck(farm.id, generation);
        if (f.farmguardian !== null) store.linkHealthCheck(farm.id, f.farmguardian, generation);
      }
    }
    for (const c of store.listHealthChecks()) {
      if (!c.template && !doc.health_checks.some((d) => d.name === c.name)) store.deleteHealthCheck(c.name);
    }
    if (plan.change.some((e) => e.kind === 'bgp')) store.saveBgpSettings(documentBgp(doc, store.bgpSettings()), generation);
    return plan;
  });
}

export class ApplyRefused extends Error {
  constructor(readonly problems: string[]) {
    super(problems.join(' '));
  }
}
