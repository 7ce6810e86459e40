/**
 * A farm's live counters, read from the kernel objects its counter sources name: packets,
 * bytes and new flows per backend, packets no backend took, flows established per backend,
 * persistence sessions. Under DSR the load balancer sees only the client-to-backend
 * direction: every figure here is inbound.
 */
import type { Farm } from '../model/farm.js';
import { openNftObjectReader, type NftObjectReader, type SetElement } from '../dataplane/netlink/nft-objects.js';
import type { Conntrack } from '../dataplane/conntrack.js';
import { counterSourcesFor, type FarmCounterSources } from './counter-sources.js';
import { readMark, readSessions } from '../dataplane/sessions.js';
import type { LiveSession } from '../model/runtime.js';

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
  /** null unless asked for, or when the farm has no persistence. */
  sessions: LiveSession[] | null;
}

/** A farm and the marks (uids) of its backends. */
export interface CountedFarm {
  farm: Farm;
  backends: readonly { uid: number }[];
}

export interface CounterReader {
  /** null: the farm has no counters in the kernel (stopped, not rendered, dry run). */
  read(farm: CountedFarm, options?: { sessions?: boolean }): Promise<FarmCounters | null>;
  /** Many farms at once (the stats list, /metrics), by farm id; objects shared by farms are read once. */
  readMany(farms: readonly CountedFarm[], options?: { sessions?: boolean }): Promise<Map<number, FarmCounters | null>>;
  close(): void;
}

/** No data plane (API tests, dry run): nothing is counted. */
export const noCounters: CounterReader = {
  read: async () => null,
  readMany: async (farms) => new Map(farms.map((f) => [f.farm.id, null])),
  close: () => {},
};

/** Reads within one call: the table-wide sets and the conntrack table are dumped once. */
interface SetReads {
  indexes: Map<string, Promise<Map<number, SetElement[]> | null>>;
  conntrack?: Promise<Map<number, number>>;
}
const newReads = (): SetReads => ({ indexes: new Map() });

function indexByMark(elements: SetElement[], by: 'key' | 'data'): Map<number, SetElement[]> {
  const out = new Map<number, SetElement[]>();
  for (const e of elements) {
    const raw = by === 'key' ? e.key : e.data;
    if (!raw) continue;
    const mark = readMark(raw);
    let list = out.get(mark);
    if (!list) out.set(mark, (list = []));
    list.push(e);
  }
  return out;
}


/**
 * Reads over a few netlink sockets at once: each read is a handful of small dumps, and what
 * dominates is the round trip through the event loop, not the kernel's work, so several
 * sockets in flight read many farms several times faster than one.
 */
export function kernelCounterReader(sockets = 6, open: () => NftObjectReader = openNftObjectReader, conntrack?: Conntrack): CounterReader {
  const pool: NftObjectReader[] = [];
  const readerAt = (i: number): NftObjectReader => (pool[i] ??= open());
  const tracked = (shared: SetReads): Promise<Map<number, number>> =>
    (shared.conntrack ??= conntrack ? conntrack.countByMark().catch(() => new Map()) : Promise.resolve(new Map()));
  const readOne = (objects: NftObjectReader, farm: CountedFarm, sessions: boolean, shared: SetReads) => {
    return readFarm(objects, counterSourcesFor(farm.farm), farm, sessions, shared, tracked);
  };
  return {
    read: (farm, options = {}) => readOne(readerAt(0), farm, options.sessions === true, newReads()),
    async readMany(farms, options = {}) {
      const out = new Map<number, FarmCounters | null>();
      const shared: SetReads = newReads();
      let next = 0;
      const worker = async (objects: NftObjectReader) => {
        while (next < farms.length) {
          const farm = farms[next++]!;
          out.set(farm.farm.id, await readOne(objects, farm, options.sessions === true, shared));
        }
      };
      const workers = Math.min(sockets, Math.max(1, Math.ceil(farms.length / 8)));
      await Promise.all(Array.from({ length: workers }, (_, i) => worker(readerAt(i))));
      return out;
    },
    close: () => {
      for (const objects of pool) objects.close();
      pool.length = 0;
    },
  };
}

async function readFarm(
  objects: NftObjectReader,
  s: FarmCounterSources,
  farm: CountedFarm,
  withSessions: boolean,
  shared: SetReads,
  tracked: (shared: SetReads) => Promise<Map<number, number>>,
): Promise<FarmCounters | null> {
  // Table-wide sets and maps serve every farm: each is dumped once per call and indexed by
  // backend mark (by key, or by value for flow pins), so reading many farms stays linear.
  const indexed = (name: string, by: 'key' | 'data'): Promise<Map<number, SetElement[]> | null> => {
    const key = `${s.family} ${s.table} ${name} ${by}`;
    let read = shared.indexes.get(key);
    if (!read) {
      read = objects.setElements(s.family, s.table, name).then((elements) => (elements === null ? null : indexByMark(elements, by)));
      shared.indexes.set(key, read);
    }
    return read;
  };
  const own = new Set(farm.backends.map((b) => b.uid));
  const forwarded = await indexed(s.forwarded, 'key');
  const drops = await indexed(s.dropped.set, 'key');
  // No table, or no drop counter for the farm: the farm is not in the kernel.
  const dropElement = drops?.get(s.dropped.slot)?.[0];
  if (forwarded === null || !dropElement) return null;
  const newFlows = (await indexed(s.newFlows, 'key')) ?? new Map<number, SetElement[]>();
  const pins = (s.established.kind === 'pins' ? await indexed(s.established.map, 'data') : null) ?? new Map<number, SetElement[]>();
  const connections = s.established.kind === 'conntrack' ? await tracked(shared) : null;

  const backends = new Map<number, BackendCounters>();
  let established = 0;
  for (const uid of own) {
    const b: BackendCounters = { packets: 0, bytes: 0, newFlows: 0, established: 0 };
    for (const e of forwarded.get(uid) ?? []) {
      b.packets += e.counter?.packets ?? 0;
      b.bytes += e.counter?.bytes ?? 0;
    }
    for (const e of newFlows.get(uid) ?? []) b.newFlows += e.counter?.packets ?? 0;
    b.established = connections ? (connections.get(uid) ?? 0) : (pins.get(uid)?.length ?? 0);
    established += b.established;
    if (b.packets || b.bytes || b.newFlows || b.established) backends.set(uid, b);
  }
  const drop = dropElement.counter ?? { packets: 0, bytes: 0 };

  const sessions = withSessions && s.sessions ? ((await readSessions(objects, s.family, s.table, s.sessions.map, s.sessions.layout)) ?? []) : null;
  const sum = (f: (b: BackendCounters) => number) => [...backends.values()].reduce((a, b) => a + f(b), 0);
  return {
    packets: sum((b) => b.packets) + drop.packets,
    bytes: sum((b) => b.bytes) + drop.bytes,
    newFlows: sum((b) => b.newFlows),
    dropped: drop.packets,
    established,
    backends,
    sessions,
  };
}

