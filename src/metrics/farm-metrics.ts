/**
 * Farm and backend series, sampled from the kernel once per scrape: `refresh()` reads every
 * running farm's counters (netlink dumps, see observe/farm-counters.ts), then the registry's
 * collect callbacks publish that sample. Counters are inbound only under DSR.
 */
import { Counter, Gauge, type Registry } from 'prom-client';
import type { FarmCounters } from '../observe/farm-counters.js';

export interface BackendSample {
  id: number;
  uid: number;
  ip: string;
  up: boolean;
}

export interface FarmSample {
  farm: string;
  counters: FarmCounters | null;
  backends: BackendSample[];
}

export interface GenerationSample {
  desired: number;
  applied: number | null;
}

export interface FarmMetricsSource {
  farms(): Promise<FarmSample[]>;
  generations(): GenerationSample;
}

export interface FarmMetrics {
  /** Reads the kernel; call before `registry.metrics()`. */
  refresh(): Promise<void>;
}

export function registerFarmMetrics(registry: Registry, source: FarmMetricsSource): FarmMetrics {
  let sample: FarmSample[] = [];
  let generations: GenerationSample = { desired: 0, applied: null };

  // Values come from the kernel's own counters: each scrape republishes them as they are.
  const counter = (name: string, help: string, labelNames: readonly string[], values: (publish: (labels: Record<string, string>, v: number) => void) => void) =>
    new Counter({
      name,
      help,
      labelNames,
      registers: [registry],
      collect() {
        this.reset();
        values((labels, v) => this.inc(labels, v));
      },
    });
  const gauge = (name: string, help: string, labelNames: readonly string[], values: (publish: (labels: Record<string, string>, v: number) => void) => void) =>
    new Gauge({
      name,
      help,
      labelNames,
      registers: [registry],
      collect() {
        this.reset();
        values((labels, v) => this.set(labels, v));
      },
    });

  const perFarm = (f: (c: FarmCounters) => number) => (publish: (l: Record<string, string>, v: number) => void) => {
    for (const s of sample) publish({ farm: s.farm }, s.counters ? f(s.counters) : 0);
  };
  const perBackend = (f: (c: FarmCounters, uid: number) => number) => (publish: (l: Record<string, string>, v: number) => void) => {
    for (const s of sample) for (const b of s.backends) publish({ farm: s.farm, backend: String(b.id), ip: b.ip }, s.counters ? f(s.counters, b.uid) : 0);
  };
  const of = (c: FarmCounters, uid: number) => c.backends.get(uid);
  const FARM = ['farm'] as const;
  const BACKEND = ['farm', 'backend', 'ip'] as const;
  const INBOUND = '(inbound only: under DSR the load balancer never sees replies)';

  counter('nftfarm_farm_packets_total', `Packets that reached the farm ${INBOUND}`, FARM, perFarm((c) => c.packets));
  counter('nftfarm_farm_bytes_total', `Bytes that reached the farm, IP header included ${INBOUND}`, FARM, perFarm((c) => c.bytes));
  counter('nftfarm_farm_new_flows_total', 'Flows the farm balanced to a backend', FARM, perFarm((c) => c.newFlows));
  counter('nftfarm_farm_dropped_packets_total', 'Packets of the farm that no backend could take', FARM, perFarm((c) => c.dropped));
  gauge('nftfarm_farm_established_flows', 'Flows pinned or tracked for the farm now', FARM, perFarm((c) => c.established));
  gauge('nftfarm_farm_sessions', 'Persistence sessions of the farm now', FARM, perFarm((c) => c.sessions?.length ?? 0));
  counter('nftfarm_backend_packets_total', `Packets sent to the backend ${INBOUND}`, BACKEND, perBackend((c, u) => of(c, u)?.packets ?? 0));
  counter('nftfarm_backend_bytes_total', `Bytes sent to the backend, IP header included ${INBOUND}`, BACKEND, perBackend((c, u) => of(c, u)?.bytes ?? 0));
  counter('nftfarm_backend_new_flows_total', 'Flows the load balancer chose the backend for', BACKEND, perBackend((c, u) => of(c, u)?.newFlows ?? 0));
  gauge('nftfarm_backend_established_flows', 'Flows pinned to the backend now', BACKEND, perBackend((c, u) => of(c, u)?.established ?? 0));
  gauge('nftfarm_backend_up', '1 when the backend can take traffic (status up), else 0', BACKEND, (publish) => {
    for (const s of sample) for (const b of s.backends) publish({ farm: s.farm, backend: String(b.id), ip: b.ip }, b.up ? 1 : 0);
  });
  gauge('nftfarm_desired_generation', 'The store generation (every write bumps it)', [], (publish) => publish({}, generations.desired));
  gauge('nftfarm_applied_generation', 'The store generation the kernel holds (-1 before the first pass)', [], (publish) => publish({}, generations.applied ?? -1));

  return {
    async refresh() {
      sample = await source.farms();
      generations = source.generations();
    },
  };
}
