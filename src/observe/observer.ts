/**
 * The statistics' and metrics' access to the kernel's counters: a worker thread
 * (observer-worker.ts) reads and computes, the API's event loop only sends farm
 * descriptions and receives results (the worker's netlink reads share one socket, in turn).
 */
import { Worker } from 'node:worker_threads';
import type { Logger } from 'pino';
import type { CounterReader, FarmCounters, FarmList, ListedFarm } from './farm-counters.js';
import type { ObserverReply, ObserverRequest } from './observer-worker.js';

/** How long close() waits for the worker to end by itself. */
const CLOSE_MS = 3000;

type Pending = { resolve: (v: unknown) => void; reject: (e: Error) => void };
/** A request without its sequence number (distributed over the union's members). */
type Request = ObserverRequest extends infer R ? (R extends ObserverRequest ? Omit<R, 'seq'> : never) : never;

export function openObserver(log?: Logger): CounterReader {
  let worker: Worker | null = null;
  let seq = 0;
  const pending = new Map<number, Pending>();
  /** The farm list version the worker holds (-1: none, a new worker). */
  let sentVersion = -1;
  const start = (): Worker => {
    if (worker) return worker;
    const w = new Worker(new URL('./observer-worker.js', import.meta.url));
    w.unref();
    w.on('message', (reply: ObserverReply) => {
      const p = pending.get(reply.seq);
      if (!p) return;
      pending.delete(reply.seq);
      if (reply.ok) p.resolve(reply.value);
      else p.reject(new Error(reply.error));
    });
    w.on('error', (err) => {
      log?.error({ err }, 'the observer worker failed; it is started again on the next read');
      for (const p of pending.values()) p.reject(err);
      pending.clear();
      worker = null;
      sentVersion = -1;
    });
    worker = w;
    sentVersion = -1;
    return w;
  };
  const ask = <T>(request: Request): Promise<T> =>
    new Promise<T>((resolve, reject) => {
      const s = ++seq;
      pending.set(s, { resolve: resolve as (v: unknown) => void, reject });
      start().postMessage({ ...request, seq: s });
    });
  // Messages reach the worker in order: once a list is sent, later requests can name its version.
  const withList = (kind: 'metrics' | 'stats', list: FarmList) => {
    start();
    const fresh = sentVersion !== list.version;
    sentVersion = list.version;
    return { kind, version: list.version, ...(fresh ? { farms: list.farms as ListedFarm[] } : {}) };
  };
  return {
    async read(farm) {
      return (await this.readMany([farm])).get(farm.id) ?? null;
    },
    async readMany(farms) {
      const pairs = await ask<[number, FarmCounters | null][]>({ kind: 'counters', farms: [...farms] });
      return new Map(pairs);
    },
    metricsText: (list) => ask<Uint8Array>(withList('metrics', list)),
    statsJson: (list) => ask<Uint8Array>(withList('stats', list)),
    connections: () => ask<Map<number, number>>({ kind: 'connections' }),
    /**
     * Asks the worker to close its sockets and end; terminates it only if it has not ended
     * within CLOSE_MS. terminate() stops the thread wherever it is, and landing inside a
     * netlink socket's callback it aborted the whole process (SIGABRT, "terminate called after
     * throwing an instance of 'Napi::Error'": CI, a SIGTERM after the fuzz test's scrapes).
     */
    async close() {
      const w = worker;
      worker = null;
      if (!w) return;
      const exited = new Promise<void>((resolve) => w.once('exit', () => resolve()));
      w.postMessage({ seq: ++seq, kind: 'close' } satisfies ObserverRequest);
      let timer: NodeJS.Timeout | undefined;
      const late = new Promise<'late'>((resolve) => (timer = setTimeout(() => resolve('late'), CLOSE_MS)));
      if ((await Promise.race([exited, late])) === 'late') {
        log?.warn({ waitedMs: CLOSE_MS }, 'the observer worker did not end when asked: terminating it');
        await w.terminate();
      }
      clearTimeout(timer);
    },
  };
}
