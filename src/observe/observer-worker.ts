/**
 * The observer's worker thread: every read of the kernel's counters, and the work done with
 * them, happens here, so a scrape of 10,000 farms never holds the API's event loop. Reads
 * only (netlink dumps): the reconciler stays the only writer.
 *
 * Counted sets (packets, bytes, new flows, drops) are dumped at every request: one dump each,
 * whatever the number of farms. Pins, connections and sessions are counted by a census that
 * walks whole maps; it is repeated for a request only when the last one was quick, else
 * reused while younger than ten times its own duration (at least a few seconds), so its cost
 * stays bounded on a loaded host.
 */
import { parentPort } from 'node:worker_threads';
import { openNftObjectReader } from '../dataplane/netlink/nft-objects.js';
import { openConnectionCounter } from '../dataplane/netlink/conntrack-count.js';
import { readMark } from '../dataplane/sessions.js';
import { counterSourcesFor } from './counter-sources.js';
import { farmCounters, setKey, type Counter, type CounterSample, type FarmDescriptor } from './farm-counters.js';
import { farmMetricsText } from '../metrics/farm-metrics.js';
import { TABLE_FAMILY, TABLE_NAME, flowsMap } from '../reconcile/names.js';

export type ObserverRequest =
  | { seq: number; kind: 'counters'; farms: FarmDescriptor[] }
  | { seq: number; kind: 'metrics'; farms: FarmDescriptor[] }
  | { seq: number; kind: 'connections' };

export type ObserverReply = { seq: number; ok: true; value: unknown } | { seq: number; ok: false; error: string };

/** A census younger than this is always reused. */
const CENSUS_MIN_AGE_MS = 2000;
/** A census quicker than this is repeated for every request (small tables: exact figures). */
const CENSUS_CHEAP_MS = 25;

const reader = openNftObjectReader();
const conntrack = openConnectionCounter();

interface Census {
  pins: Map<number, number>;
  connections: Map<number, number>;
  sessions: Map<string, number>;
  at: number;
  tookMs: number;
}
let census: Census | null = null;
let censusRunning: Promise<Census> | null = null;

async function takeCensus(farms: readonly FarmDescriptor[]): Promise<Census> {
  const started = performance.now();
  const pins = new Map<number, number>();
  for (const protocol of ['tcp', 'udp', 'sctp', 'all']) {
    for (const e of (await reader.setElements(TABLE_FAMILY, TABLE_NAME, flowsMap(protocol))) ?? []) {
      if (!e.data) continue;
      const mark = readMark(e.data);
      pins.set(mark, (pins.get(mark) ?? 0) + 1);
    }
  }
  const natFarms = farms.some((f) => f.nattype === 'nat' || f.nattype === 'dnat');
  const connections = natFarms ? await conntrack.countByMark() : new Map<number, number>();
  const sessions = new Map<string, number>();
  for (const f of farms) {
    const s = counterSourcesFor(f);
    if (!s.sessions) continue;
    sessions.set(setKey(s.family, s.table, s.sessions.map), (await reader.setElements(s.family, s.table, s.sessions.map))?.length ?? 0);
  }
  return { pins, connections, sessions, at: Date.now(), tookMs: performance.now() - started };
}

/** A census fresh enough for a request now (see the header). */
async function currentCensus(farms: readonly FarmDescriptor[]): Promise<Census> {
  const age = census ? Date.now() - census.at : Infinity;
  const reusable = census && census.tookMs >= CENSUS_CHEAP_MS && age < Math.max(CENSUS_MIN_AGE_MS, 10 * census.tookMs);
  if (reusable) return census!;
  censusRunning ??= takeCensus(farms).finally(() => (censusRunning = null));
  census = await censusRunning;
  return census;
}

/** The counted sets the farms' counters come from, each dumped once. */
async function sample(farms: readonly FarmDescriptor[]): Promise<CounterSample> {
  const wanted = new Map<string, [string, string, string]>();
  for (const f of farms) {
    const s = counterSourcesFor(f);
    for (const set of [s.forwarded, s.newFlows, s.dropped.set]) wanted.set(setKey(s.family, s.table, set), [s.family, s.table, set]);
  }
  const sets = new Map<string, Map<number, Counter>>();
  for (const [key, [family, table, set]] of wanted) {
    const byMark = new Map<number, Counter>();
    for (const e of (await reader.setElements(family, table, set)) ?? []) if (e.counter) byMark.set(readMark(e.key), e.counter);
    sets.set(key, byMark);
  }
  const c = await currentCensus(farms);
  return { sets, pins: c.pins, connections: c.connections, sessions: c.sessions };
}

async function handle(request: ObserverRequest): Promise<unknown> {
  switch (request.kind) {
    case 'counters': {
      const s = await sample(request.farms);
      return request.farms.map((f) => [f.id, farmCounters(f, s)] as const);
    }
    case 'metrics':
      return farmMetricsText(request.farms, await sample(request.farms));
    case 'connections':
      return conntrack.countByMark();
  }
}

parentPort?.on('message', (request: ObserverRequest) => {
  handle(request).then(
    (value) => parentPort!.postMessage({ seq: request.seq, ok: true, value } satisfies ObserverReply),
    (err: unknown) => parentPort!.postMessage({ seq: request.seq, ok: false, error: err instanceof Error ? err.message : String(err) } satisfies ObserverReply),
  );
});
