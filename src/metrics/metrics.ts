/**
 * The Prometheus registry of one nftfarm process and the events it records: reconcile
 * passes, health checks, API requests. Farm and backend counters are sampled from the
 * kernel at scrape time (farm-metrics.ts). One registry per process (not prom-client's
 * global one), so tests can build many apps side by side.
 */
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import type { PassReport, PassResult } from '../reconcile/reconciler.js';

export interface Metrics {
  readonly registry: Registry;
  /** One reconcile pass: `kind` full/incremental/check, what it did, how long it took. */
  reconcilePass(kind: PassReport['kind'], result: PassResult, seconds: number): void;
  /** One health-check run against one backend (for the health-check scheduler). */
  healthCheck(labels: { farm: string; backend: string; result: 'up' | 'down' }, seconds: number): void;
  /** One API request, by route pattern (not the raw URL: farm names stay out of the labels). */
  apiRequest(method: string, route: string, status: number, seconds: number): void;
  /** Where the store and applied generations are read at each scrape. */
  watchGenerations(source: () => { desired: number; applied: number | null }): void;
}

export function createMetrics(options: { processMetrics?: boolean } = {}): Metrics {
  const registry = new Registry();
  if (options.processMetrics !== false) collectDefaultMetrics({ register: registry, prefix: 'nftfarm_' });
  const passes = new Histogram({
    name: 'nftfarm_reconcile_pass_duration_seconds',
    help: 'Duration of reconcile passes, by kind (full, incremental, check) and result (applied: a transaction was committed; unchanged: nothing to commit; idle: a periodic check with nothing new; failed)',
    labelNames: ['kind', 'result'] as const,
    buckets: [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120],
    registers: [registry],
  });
  const failures = new Counter({
    name: 'nftfarm_reconcile_failures_total',
    help: 'Reconcile passes that failed (the kernel kept its previous ruleset)',
    registers: [registry],
  });
  const checks = new Histogram({
    name: 'nftfarm_health_check_duration_seconds',
    help: 'Duration of health checks, by farm, backend and result',
    labelNames: ['farm', 'backend', 'result'] as const,
    buckets: [0.001, 0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10],
    registers: [registry],
  });
  const requests = new Histogram({
    name: 'nftfarm_api_request_duration_seconds',
    help: 'Duration of HTTP API requests, by method, route pattern and status code',
    labelNames: ['method', 'route', 'status'] as const,
    buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5],
    registers: [registry],
  });
  let generations: () => { desired: number; applied: number | null } = () => ({ desired: 0, applied: null });
  new Gauge({
    name: 'nftfarm_desired_generation',
    help: 'The store generation: bumped by every write',
    registers: [registry],
    collect() {
      this.set(generations().desired);
    },
  });
  new Gauge({
    name: 'nftfarm_applied_generation',
    help: 'The store generation the kernel holds (-1 before the first pass)',
    registers: [registry],
    collect() {
      this.set(generations().applied ?? -1);
    },
  });
  return {
    registry,
    watchGenerations(source) {
      generations = source;
    },
    reconcilePass(kind, result, seconds) {
      passes.observe({ kind, result }, seconds);
      if (result === 'failed') failures.inc();
    },
    healthCheck(labels, seconds) {
      checks.observe(labels, seconds);
    },
    apiRequest(method, route, status, seconds) {
      requests.observe({ method, route, status: String(status) }, seconds);
    },
  };
}
