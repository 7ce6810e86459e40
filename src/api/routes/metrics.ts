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
import { counterDescriptor } from '../present.js';
import { noCounters } from '../../observe/farm-counters.js';
import type { Metrics } from '../../metrics/metrics.js';
import { sendZapiError, ZapiError } from '../zapi.js';

export const MAX_WAITING_SCRAPES = 8;

export type MetricsAccess = 'open' | 'key' | 'off';

export async function metricsRoute(app: FastifyInstance, options: { metrics: Metrics; access: MetricsAccess }): Promise<void> {
  const { store, dataplane } = app.deps;
  const counters = app.deps.counters ?? noCounters;
  // Farm and backend series come from the observer's worker thread, written there from one
  // counter sample; the registry holds the process's own series (passes, API, health checks).
  const scrape = async (): Promise<string> => {
    const running = store.snapshot().farms.filter((f) => f.farm.running);
    const farms = await counters.metricsText(running.map(({ farm, backends }) => counterDescriptor(farm, backends, dataplane.farm(farm.id))));
    return `${await options.metrics.registry.metrics()}${farms}`;
  };
  // One scrape at a time: scrapes that arrive meanwhile share its answer.
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
