/**
 * A farm's live counters, computed from one sample of the kernel's counters: packets, bytes
 * and new flows per backend (per-element counters of table-wide sets keyed by backend mark),
 * packets no backend took (a set keyed by farm slot), flows established per backend (pins
 * counted in the flow maps, or connections conntrack tracks), persistence sessions. Pure:
 * the sample is read elsewhere (observer-worker.ts). Under DSR the load balancer sees only
 * the client-to-backend direction: every figure here is inbound.
 */
import type { Persistence, NatType, Protocol } from '../model/farm.js';
import { counterSourcesFor } from './counter-sources.js';

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

/** The farm's counters in the sample; null when the farm is not in the kernel (no drop counter). */
export function farmCounters(farm: FarmDescriptor, sample: CounterSample): FarmCounters | null {
  const s = counterSourcesFor(farm);
  const drops = sample.sets.get(setKey(s.family, s.table, s.dropped.set));
  const drop = drops?.get(s.dropped.slot);
  if (!drop) return null;
  const forwarded = sample.sets.get(setKey(s.family, s.table, s.forwarded));
  const newFlows = sample.sets.get(setKey(s.family, s.table, s.newFlows));
  const established = s.established.kind === 'pins' ? sample.pins : sample.connections;
  const backends = new Map<number, BackendCounters>();
  let total = 0;
  for (const { uid } of farm.backends) {
    const f = forwarded?.get(uid);
    const b: BackendCounters = { packets: f?.packets ?? 0, bytes: f?.bytes ?? 0, newFlows: newFlows?.get(uid)?.packets ?? 0, established: established.get(uid) ?? 0 };
    total += b.established;
    if (b.packets || b.bytes || b.newFlows || b.established) backends.set(uid, b);
  }
  const sum = (f: (b: BackendCounters) => number) => [...backends.values()].reduce((a, b) => a + f(b), 0);
  return {
    packets: sum((b) => b.packets) + drop.packets,
    bytes: sum((b) => b.bytes) + drop.bytes,
    newFlows: sum((b) => b.newFlows),
    dropped: drop.packets,
    established: total,
    backends,
    sessions: s.sessions ? (sample.sessions.get(setKey(s.family, s.table, s.sessions.map)) ?? 0) : null,
  };
}

export interface CounterReader {
  /** Counters of one farm; null: not in the kernel (stopped, not rendered, dry run). */
  read(farm: FarmDescriptor): Promise<FarmCounters | null>;
  /** Many farms at once (the stats list), by farm id: each table-wide set is read once. */
  readMany(farms: readonly FarmDescriptor[]): Promise<Map<number, FarmCounters | null>>;
  /** The Prometheus text of the farm and backend series, built off the event loop. */
  metricsText(farms: readonly FarmDescriptor[]): Promise<string>;
  /** Connections per backend mark, counted now (leastconn, max_conns). */
  connections(): Promise<Map<number, number>>;
  close(): void;
}

/** No data plane (API tests, dry run): nothing is counted. */
export const noCounters: CounterReader = {
  read: async () => null,
  readMany: async (farms) => new Map(farms.map((f) => [f.id, null])),
  metricsText: async () => '',
  connections: async () => new Map(),
  close: () => {},
};
