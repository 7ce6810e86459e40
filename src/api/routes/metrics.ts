/**
 * GET /metrics: Prometheus text exposition. `open` (the default while the API listens on
 * loopback only: scrapers rarely send API keys), `key` asks for the ZAPI key (the default
 * otherwise), `off` removes the route.
 *
 * One scrape at a time: a scrape reads every farm's counters (seconds of work with thousands
 * of farms), so scrapes that arrive while one runs share its answer, and beyond
 * MAX_WAITING_SCRAPES of them the next ones get 503 in the envelope.
 */
import type { FastifyInstance } from 'fastify';
import { keysMatch } from '../api-key.js';
import { backendView } from '../present.js';
import { noCounters } from '../../observe/farm-counters.js';
import { registerFarmMetrics, type FarmSample } from '../../metrics/farm-metrics.js';
import type { Metrics } from '../../metrics/metrics.js';
import { sendZapiError, ZapiError } from '../zapi.js';

export const MAX_WAITING_SCRAPES = 8;

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

  const scrape = async (): Promise<string> => {
    await farmMetrics.refresh();
    return options.metrics.registry.metrics();
  };
  let running: Promise<string> | null = null;
  let waiting = 0;

  app.get('/metrics', { schema: { hide: true } }, async (request, reply) => {
    if (options.access === 'key') {
      const given = request.headers['zapi_key'] ?? request.headers['api_key'];
      if (typeof given !== 'string' || !keysMatch(given, app.deps.apiKey)) return reply.code(401).send({ message: 'Authorization required' });
    }
    if (running && waiting >= MAX_WAITING_SCRAPES) {
      return sendZapiError(reply, new ZapiError(503, 'Another scrape of /metrics is running and others wait for it; retry in a moment.', undefined, 'Metrics'));
    }
    let text: string;
    if (running) {
      waiting++;
      try {
        text = await running;
      } finally {
        waiting--;
      }
    } else {
      running = scrape().finally(() => {
        running = null;
      });
      text = await running;
    }
    reply.type(options.metrics.registry.contentType);
    return text;
  });
}
