/**
 * GET /metrics: Prometheus text exposition. Open by default (scrapers rarely send API keys);
 * `NFTFARM_METRICS=key` asks for the ZAPI key, `off` removes the route.
 */
import type { FastifyInstance } from 'fastify';
import { keysMatch } from '../api-key.js';
import { counterDescriptor } from '../present.js';
import { noCounters } from '../../observe/farm-counters.js';
import type { Metrics } from '../../metrics/metrics.js';

export type MetricsAccess = 'open' | 'key' | 'off';

export async function metricsRoute(app: FastifyInstance, options: { metrics: Metrics; access: MetricsAccess }): Promise<void> {
  const { store, dataplane } = app.deps;
  const counters = app.deps.counters ?? noCounters;
  app.get('/metrics', { schema: { hide: true } }, async (request, reply) => {
    if (options.access === 'key') {
      const given = request.headers['zapi_key'] ?? request.headers['api_key'];
      if (typeof given !== 'string' || !keysMatch(given, app.deps.apiKey)) return reply.code(401).send({ message: 'Authorization required' });
    }
    // Farm and backend series come from the observer's worker thread, written there from one
    // counter sample; the registry holds the process's own series (passes, API, health checks).
    const running = store.snapshot().farms.filter((f) => f.farm.running);
    const farms = await counters.metricsText(running.map(({ farm, backends }) => counterDescriptor(farm, backends, dataplane.farm(farm.id))));
    reply.type(options.metrics.registry.contentType);
    return `${await options.metrics.registry.metrics()}${farms}`;
  });
}
