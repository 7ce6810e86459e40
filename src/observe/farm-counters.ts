/**
 * A farm's live counters, computed from one sample of the kernel's counters: packets, bytes
 * and new flows per backend (per-element counters of table-wide sets keyed by backend mark),
 * packets no backend took (a set keyed by farm slot), flows established per backend (pins
 * counted in the flow maps, or connections conntrack tracks), persistence sessions. Pure:
 * the sample is read elsewhere (observer-worker.ts). Under DSR the load balancer sees only
 * the client-to-backend direction: every figure here is inbound.
 */
import type { FarmStatus, Persistence, NatType, Protocol } from '../model/farm.js';
import { counterSourcesFor } from './counter-sources.js';
import { farmStatsJson } from './farm-stats-json.js';

export interface BackendCounters {
  packets: number;
  bytes: number;
  newFlows: number;
  established: number;
}

export interface FarmCounters {
  /** Packets that reached the farm: sent to a backend, or dropped for want of one. */
  packets: number;
  bytes: number;
  newFlows: number;
  dropped: number;
  /** Flows currently pinned or tracked, whatever their backend. */
  established: number;
  /** By backend mark (uid). */
  backends: Map<number, BackendCounters>;
  /** Persistence sessions now; null without persistence. */
  sessions: number | null;
}

/** What the observer needs to know of a farm: plain data (it crosses to a worker thread). */
export interface FarmDescriptor {
  id: number;
  slot: number;
  name: string;
  nattype: NatType;
  protocol: Protocol;
  persistence: Persistence;
  backends: { uid: number; id: number; ip: string; up: boolean }[];
}

/** A farm as the reads of every farm (/metrics, /stats/farms) show it: stopped ones included. */
export interface ListedFarm extends FarmDescriptor {
  running: boolean;
  profile: string;
  status: FarmStatus;
  vip: string;
  vport: string;
}

/**
 * Every farm in the store's order (by name), with a version that changes whenever any of them
 * does: the observer sends the list to its worker only when the worker does not hold it yet.
 */
export interface FarmList {
  version: number;
  farms: readonly ListedFarm[];
}

export interface Counter {
  packets: number;
  bytes: number;
}

/** One read of the kernel: counted sets by "family table set", then by mark; and the census. */
export interface CounterSample {
  sets: Map<string, Map<number, Counter>>;
  /** Flows pinned per backend mark (dsr, stateless_dnat). */
  pins: Map<number, number>;
  /** Connections tracked per backend mark (nat, dnat). */
  connections: Map<number, number>;
  /** Elements per session map, by "family table map". */
  sessions: Map<string, number>;
}

export const setKey = (family: string, table: string, set: string): string => `${family} ${table} ${set}`;

type SetIndex = Map<string, Map<string, Map<string, Map<number, Counter>>>>;
const indexes = new WeakMap<CounterSample, SetIndex>();

/**
 * A counted set of the sample by family, table and name, through nested maps: the names are
 * constants, so nothing is concatenated and hashed again for each of 10,000 farms.
 */
function countedSet(sample: CounterSample, family: string, table: string, set: string): Map<number, Counter> | undefined {
  let index = indexes.get(sample);
  if (!index) {
    index = new Map();
    for (const [key, counters] of sample.sets) {
      const [f = '', t = '', name = ''] = key.split(' ');
      let tables = index.get(f);
      if (!tables) index.set(f, (tables = new Map()));
      let sets = tables.get(t);
      if (!sets) tables.set(t, (sets = new Map()));
      sets.set(name, counters);
    }
    indexes.set(sample, index);
  }
  return index.get(family)?.get(table)?.get(set);
}

/** The farm's counters in the sample; null when the farm is not in the kernel (no drop counter). */
export function farmCounters(farm: FarmDescriptor, sample: CounterSample): FarmCounters | null {
  const s = counterSourcesFor(farm);
  const drops = countedSet(sample, s.family, s.table, s.dropped.set);
  const drop = drops?.get(s.dropped.slot);
  if (!drop) return null;
  const forwarded = countedSet(sample, s.family, s.table, s.forwarded);
  const newFlows = countedSet(sample, s.family, s.table, s.newFlows);
  const pinned = s.established.kind === 'pins' ? sample.pins : sample.connections;
  const backends = new Map<number, BackendCounters>();
  // One loop for every total: this runs for each of 10,000 farms at every scrape.
  let established = 0;
  let packets = drop.packets;
  let bytes = drop.bytes;
  let flows = 0;
  for (const { uid } of farm.backends) {
    const f = forwarded?.get(uid);
    const b: BackendCounters = { packets: f?.packets ?? 0, bytes: f?.bytes ?? 0, newFlows: newFlows?.get(uid)?.packets ?? 0, established: pinned.get(uid) ?? 0 };
    established += b.established;
    packets += b.packets;
    bytes += b.bytes;
    flows += b.newFlows;
    if (b.packets || b.bytes || b.newFlows || b.established) backends.set(uid, b);
  }
  return {
    packets,
    bytes,
    newFlows: flows,
    dropped: drop.packets,
    established,
    backends,
    sessions: s.sessions ? (sample.sessions.get(setKey(s.family, s.table, s.sessions.map)) ?? 0) : null,
  };
}

export interface CounterReader {
  /** Counters of one farm; null: not in the kernel (stopped, not rendered, dry run). */
  read(farm: FarmDescriptor): Promise<FarmCounters | null>;
  /** Many farms at once (the stats list), by farm id: each table-wide set is read once. */
  readMany(farms: readonly FarmDescriptor[]): Promise<Map<number, FarmCounters | null>>;
  /** The Prometheus text (UTF-8) of the running farms' and their backends' series, built off the event loop. */
  metricsText(list: FarmList): Promise<Uint8Array>;
  /** The JSON body (UTF-8) of GET /stats/farms, built off the event loop; without it, the route shows zeros. */
  statsJson?(list: FarmList): Promise<Uint8Array>;
  /** Connections per backend mark, counted now (leastconn, max_conns). */
  connections(): Promise<Map<number, number>>;
  close(): void | Promise<void>;
}

/** No data plane (API tests, dry run): nothing is counted. */
export const noCounters: CounterReader = {
  read: async () => null,
  readMany: async (farms) => new Map(farms.map((f) => [f.id, null])),
  metricsText: async () => new Uint8Array(0),
  statsJson: async (list) => new TextEncoder().encode(farmStatsJson(list.farms, null)),
  connections: async () => new Map(),
  close: () => {},
};
