/**
 * The observer's worker thread: every read of the kernel's counters, and the work done with
 * them, happens here, so a scrape of 10,000 farms never holds the API's event loop. Reads
 * only (netlink dumps): the reconciler stays the only writer.
 *
 * One sample holds every counted set (packets, bytes, new flows, drops: one dump each,
 * whatever the number of farms), the pins of the flow maps, conntrack's connections and the
 * sessions: see currentSample for how fresh it is.
 */
import { parentPort } from 'node:worker_threads';
import { openNftObjectReader } from '../dataplane/netlink/nft-objects.js';
import { openConnectionCounter } from '../dataplane/netlink/conntrack-count.js';
import { readMark } from '../dataplane/sessions.js';
import { counterSourcesFor } from './counter-sources.js';
import { farmCounters, setKey, type Counter, type CounterSample, type FarmDescriptor, type FarmList, type ListedFarm } from './farm-counters.js';
import { farmStatsJson } from './farm-stats-json.js';
import { farmMetricsBytes } from '../metrics/farm-metrics.js';
import { TABLE_FAMILY, TABLE_NAME, flowsMap } from '../reconcile/names.js';

export type ObserverRequest =
  | { seq: number; kind: 'counters'; farms: FarmDescriptor[] }
  /** `farms`: the list of that version, sent only when the worker does not hold it yet. */
  | { seq: number; kind: 'metrics' | 'stats'; version: number; farms?: ListedFarm[] }
  | { seq: number; kind: 'connections' }
  /** Close the sockets and end the thread (see observer.ts close). */
  | { seq: number; kind: 'close' };

export type ObserverReply = { seq: number; ok: true; value: unknown } | { seq: number; ok: false; error: string };


/**
 * A few sockets: the kernel walks a hash set from its start for every chunk of a dump, so one
 * dump of tens of thousands of elements takes a while, and several in parallel share the cores.
 */
const readers = [openNftObjectReader(), openNftObjectReader(), openNftObjectReader()];
const conntrack = openConnectionCounter();

/** A sample quicker than this is taken again for every request (small tables: exact figures). */
const CHEAP_MS = 25;
/**
 * A costly sample is reused while younger than this, or than 4 times what it took: scrapes
 * in a burst share one, and figures stay fresh (a 2 s window served counters from before
 * the traffic a test had just sent, when a loaded machine made samples slow).
 */
const MIN_AGE_MS = 250;

interface Taken {
  sample: CounterSample;
  at: number;
  tookMs: number;
}
let last: Taken | null = null;
let taking: Promise<Taken> | null = null;

/** Every counted set of both tables, the pins of every flow map, conntrack's connections, the sessions of these farms. */
async function takeSample(farms: readonly FarmDescriptor[]): Promise<Taken> {
  const started = performance.now();
  const counted: [string, string, string][] = [];
  const sessionMaps: [string, string, string][] = [];
  for (const f of farms) {
    const s = counterSourcesFor(f);
    for (const set of [s.forwarded, s.newFlows, s.dropped.set]) counted.push([s.family, s.table, set]);
    if (s.sessions) sessionMaps.push([s.family, s.table, s.sessions.map]);
  }
  const unique = <T extends string[]>(list: T[]) => [...new Map(list.map((x) => [x.join(' '), x])).values()];
  const sets = new Map<string, Map<number, Counter>>();
  const sessions = new Map<string, number>();
  const pins = new Map<number, number>();
  const ipv6Pins = farms.some((f) => (f.nattype === 'dsr' || f.nattype === 'stateless_dnat') && f.backends.some((b) => b.ip.includes(':')));
  const jobs: (() => Promise<void>)[] = [
    ...unique(counted).map(([family, table, set]) => async () => {
      const byMark = new Map<number, Counter>();
      for (const e of (await next().setElements(family, table, set)) ?? []) if (e.counter) byMark.set(readMark(e.key), e.counter);
      sets.set(setKey(family, table, set), byMark);
    }),
    // IPv6 farms pin their flows in maps of their own, read only while one can have pins
    // (each dump costs: a sample that takes over CHEAP_MS is served from the cache).
    ...['tcp', 'udp', 'sctp', 'all'].flatMap((protocol) => [flowsMap(protocol), ...(ipv6Pins ? [flowsMap(protocol, true)] : [])]).map((map) => async () => {
      for (const e of (await next().setElements(TABLE_FAMILY, TABLE_NAME, map)) ?? []) {
        if (!e.data) continue;
        const mark = readMark(e.data);
        pins.set(mark, (pins.get(mark) ?? 0) + 1);
      }
    }),
    ...unique(sessionMaps).map(([family, table, map]) => async () => {
      sessions.set(setKey(family, table, map), (await next().setElements(family, table, map))?.length ?? 0);
    }),
  ];
  let turn = 0;
  const next = () => readers[turn++ % readers.length]!;
  const natFarms = farms.some((f) => f.nattype === 'nat' || f.nattype === 'dnat');
  const [connections] = await Promise.all([natFarms ? conntrack.countByMark() : Promise.resolve(new Map<number, number>()), runJobs(jobs, readers.length)]);
  return { sample: { sets, pins, connections, sessions }, at: Date.now(), tookMs: performance.now() - started };
}

/** Runs the jobs with at most `width` at a time. */
async function runJobs(jobs: (() => Promise<void>)[], width: number): Promise<void> {
  let i = 0;
  await Promise.all(Array.from({ length: width }, async () => {
    while (i < jobs.length) await jobs[i++]!();
  }));
}

/**
 * A sample fresh enough for a request: taken now when sampling is cheap; otherwise the last
 * one while it is younger than ten times what it took to take (at least two seconds), so
 * reading a huge table's counters costs a bounded share of a core whatever the scrape rate.
 * It must cover the farms asked about (their session maps).
 */
async function currentSample(farms: readonly FarmDescriptor[]): Promise<CounterSample> {
  const age = last ? Date.now() - last.at : Infinity;
  const covers = (t: Taken) =>
    farms.every((f) => {
      const s = counterSourcesFor(f);
      return !s.sessions || t.sample.sessions.has(setKey(s.family, s.table, s.sessions.map));
    });
  if (last && last.tookMs >= CHEAP_MS && age < Math.max(MIN_AGE_MS, 4 * last.tookMs) && covers(last)) return last.sample;
  taking ??= takeSample(farms).finally(() => (taking = null));
  last = await taking;
  return last.sample;
}

/** The last farm list the API sent (the reads of every farm send it only when it changed). */
let held: (FarmList & { running: ListedFarm[] }) | null = null;

function listOf(request: { version: number; farms?: ListedFarm[] }): FarmList & { running: ListedFarm[] } {
  if (request.farms) held = { version: request.version, farms: request.farms, running: request.farms.filter((f) => f.running) };
  if (!held || held.version !== request.version) throw new Error(`the observer does not hold farm list ${request.version}`);
  return held;
}

/** UTF-8 in an ArrayBuffer of its own, so that it can be transferred to the API's thread, not copied. */
export function ownBytes(text: string): Uint8Array {
  const bytes = Buffer.allocUnsafeSlow(Buffer.byteLength(text));
  bytes.write(text);
  return bytes;
}

async function handle(request: Exclude<ObserverRequest, { kind: 'close' }>): Promise<unknown> {
  switch (request.kind) {
    case 'counters': {
      const s = await currentSample(request.farms);
      return request.farms.map((f) => [f.id, farmCounters(f, s)] as const);
    }
    case 'metrics': {
      const { running } = listOf(request);
      return farmMetricsBytes(running, await currentSample(running));
    }
    case 'stats': {
      const { farms, running } = listOf(request);
      return ownBytes(farmStatsJson(farms, await currentSample(running)));
    }
    case 'connections':
      return conntrack.countByMark();
  }
}

let closing = false;
const reply = (message: ObserverReply, transfer: ArrayBuffer[] = []) => {
  if (!closing) parentPort!.postMessage(message, transfer);
};

parentPort?.on('message', (request: ObserverRequest) => {
  if (request.kind === 'close') {
    closing = true;
    // The thread ends here, between callbacks: no netlink socket callback can be running
    // (terminate() from the API's thread lands wherever the thread is, and inside one it
    // aborts the whole process). Reads in flight would keep it alive until their timeouts.
    for (const reader of readers) reader.close();
    conntrack.close();
    process.exit(0);
  }
  handle(request).then(
    (value) => reply({ seq: request.seq, ok: true, value }, value instanceof Uint8Array ? [value.buffer as ArrayBuffer] : []),
    (err: unknown) => reply({ seq: request.seq, ok: false, error: err instanceof Error ? err.message : String(err) }),
  );
});
