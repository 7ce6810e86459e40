/**
 * The declarative configuration document: every farm, backend, health check and link, and
 * the BGP settings apart from the node's own router id, free of local ids, in a stable order
 * (same configuration, same bytes). Its SHA-256 is the `config_digest` nodes compare.
 */
import { createHash } from 'node:crypto';
import type { Store } from '../store/store.js';
import type { Maintenance } from '../model/farm.js';
import { bgpToJson, type BgpJson } from '../cluster/bgp-settings.js';

export const DOCUMENT_FORMAT = 'nftfarm-config/1';

export interface DocBackend {
  ip: string;
  /** null: the client's destination port. */
  port: number | null;
  weight: number;
  priority: number;
  max_conns: number;
  maintenance: Maintenance;
}

export interface DocFarm {
  farmname: string;
  vip: string;
  vport: string;
  protocol: string;
  nattype: string;
  algorithm: string;
  /** '' (none), srcip, srcport, srcmac, srcip_srcport, srcip_dstport. */
  persistence: string;
  ttl: number;
  /** Started (true) or stopped. */
  running: boolean;
  /** The linked health check's name, or null. */
  farmguardian: string | null;
  /** Sorted by address, then port. */
  backends: DocBackend[];
}

export interface DocHealthCheck {
  name: string;
  /** A built-in check (check_tcp...): only its timing and flags can differ. */
  template: boolean;
  description: string;
  command: string;
  interval: number;
  timeout: number;
  fall: number;
  rise: number;
  cut_conns: boolean;
  log: boolean;
  backend_alias: boolean;
}

export type DocBgp = Omit<BgpJson, 'router_id'>;

export interface ConfigDocument {
  format: typeof DOCUMENT_FORMAT;
  /** Sorted by name. */
  farms: DocFarm[];
  /** Sorted by name. */
  health_checks: DocHealthCheck[];
  bgp: DocBgp;
}

const ipKey = (ip: string): number => ip.split('.').reduce((n, o) => n * 256 + Number(o), 0);
export const backendOrder = (a: Pick<DocBackend, 'ip' | 'port'>, b: Pick<DocBackend, 'ip' | 'port'>): number =>
  ipKey(a.ip) - ipKey(b.ip) || (a.port ?? 0) - (b.port ?? 0);
const byName = (a: string, b: string): number => (a < b ? -1 : a > b ? 1 : 0);

/** The document of what the store holds now (one consistent read). */
export function exportDocument(store: Store): ConfigDocument {
  return store.db
    .transaction(() => {
      const snapshot = store.snapshot();
      const farms: DocFarm[] = snapshot.farms
        .map(({ farm, backends, healthCheck }) => ({
          farmname: farm.name,
          vip: farm.vip,
          vport: farm.vport,
          protocol: farm.protocol,
          nattype: farm.nattype,
          algorithm: farm.algorithm,
          persistence: farm.persistence,
          ttl: farm.ttl,
          running: farm.running,
          farmguardian: healthCheck?.name ?? null,
          backends: backends
            .map((b) => ({ ip: b.ip, port: b.port, weight: b.weight, priority: b.priority, max_conns: b.maxConns, maintenance: b.maintenance }))
            .sort(backendOrder),
        }))
        .sort((a, b) => byName(a.farmname, b.farmname));
      const checks: DocHealthCheck[] = store
        .listHealthChecks()
        .map((c) => ({
          name: c.name,
          template: c.template,
          description: c.description,
          command: c.command,
          interval: c.interval,
          timeout: c.timeout,
          fall: c.fall,
          rise: c.rise,
          cut_conns: c.cutConns,
          log: c.log,
          backend_alias: c.backendAlias,
        }))
        .sort((a, b) => byName(a.name, b.name));
      const { router_id: _nodeSpecific, ...bgp } = bgpToJson(store.bgpSettings(), true);
      return { format: DOCUMENT_FORMAT, farms, health_checks: checks, bgp } as ConfigDocument;
    })
    .deferred();
}

/** The document's bytes: JSON with the key order the types above give, two-space indented. */
export function documentText(doc: ConfigDocument): string {
  return `${JSON.stringify(doc, null, 2)}\n`;
}

/** `sha256:<hex>` of the document's bytes: equal on two nodes exactly when their configurations are. */
export function documentDigest(doc: ConfigDocument): string {
  return `sha256:${createHash('sha256').update(documentText(doc)).digest('hex')}`;
}

const digests = new WeakMap<Store, { generation: number; digest: string }>();

/** The digest of the store's document; recomputed only after a write (every write bumps the generation). */
export function configDigest(store: Store): string {
  const generation = store.generation();
  const cached = digests.get(store);
  if (cached?.generation === generation) return cached.digest;
  const digest = documentDigest(exportDocument(store));
  digests.set(store, { generation, digest });
  return digest;
}
