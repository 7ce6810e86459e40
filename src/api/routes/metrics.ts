/**
 * GET /metrics: Prometheus text exposition. Open by default (scrapers rarely send API keys);
 * `NFTFARM_METRICS=key` asks for the ZAPI key, `off` removes the route.
 */
import type { FastifyInstance } from 'fastify';
import { keysMatch } from '../api-key.js';
import { backendView } from '../present.js';
import { noCounters } from '../../observe/farm-counters.js';
import { registerFarmMetrics, type FarmSample } from '../../metrics/farm-metrics.js';
import type { Metrics } from '../../metrics/metrics.js';

export type MetricsAccess = 'open' | 'key' | 'off';

export async function metricsRoute(app: FastifyInstance, options: { metrics: Metrics; access: MetricsAccess }): Promise<void> {
  const { store, dataplane } = app.deps;
  const counters = app.deps.counters ?? noCounters;
  const farmMetrics = registerFarmMetrics(options.metrics.registry, {
    async farms() {
      const all = store.snapshot().farms;
      const read = await counters.readMany(all.filter((f) => f.farm.running), { sessions: true });
      return all.map(({ farm, backends }): FarmSample => {
        const runtime = dataplane.farm(farm.id);
        return {
          farm: farm.name,
          counters: read.get(farm.id) ?? null,
          backends: backends.map((b) => ({ id: b.id, uid: b.uid, ip: b.ip, up: backendView(b, farm, runtime).status === 'up' })),
        };
      });
    },
    generations() {
      const system = dataplane.system();
      return { desired: system.storeGeneration, applied: system.appliedGeneration };
    },
  });

  app.get('/metrics', { schema: { hide: true } }, async (request, reply) => {
    if (options.access === 'key') {
      const given = request.headers['zapi_key'] ?? request.headers['api_key'];
      if (typeof given !== 'string' || !keysMatch(given, app.deps.apiKey)) return reply.code(401).send({ message: 'Authorization required' });
    }
    await farmMetrics.refresh();
    reply.type(options.metrics.registry.contentType);
    return options.metrics.registry.metrics();
  });
}
