/**
 * GET /metrics: Prometheus text exposition. `open` (the default while the API listens on
 * loopback only: scrapers rarely send API keys), `key` asks for the ZAPI key (the default
 * otherwise), `off` removes the route.
 *
 * One scrape at a time: a scrape reads every farm's counters (seconds of work with thousands
 * of farms), so scrapes that arrive while one runs share its answer, and beyond
 * MAX_WAITING_SCRAPES of them the next ones get 503 in the envelope.
 */
import { Readable } from 'node:stream';
import type { FastifyInstance } from 'fastify';
import { keysMatch } from '../api-key.js';
import type { FarmListCache } from '../farm-list.js';
import { noCounters } from '../../observe/farm-counters.js';
import type { Metrics } from '../../metrics/metrics.js';
import { sendZapiError, ZapiError } from '../zapi.js';

export const MAX_WAITING_SCRAPES = 8;

export type MetricsAccess = 'open' | 'key' | 'off';

export async function metricsRoute(app: FastifyInstance, options: { metrics: Metrics; access: MetricsAccess; farmList: FarmListCache }): Promise<void> {
  const counters = app.deps.counters ?? noCounters;
  // Farm and backend series come from the observer's worker thread, written there (as UTF-8)
  // from one counter sample and the farm list kept between reads; the registry holds the
  // process's own series (passes, API, health checks). The event loop only sends bytes:
  // encoding megabytes of text there stalled other requests.
  const scrape = async (): Promise<Buffer[]> => {
    const farms = await counters.metricsText(options.farmList.current());
    return [Buffer.from(await options.metrics.registry.metrics()), Buffer.from(farms.buffer, farms.byteOffset, farms.byteLength)];
  };
  // One scrape at a time: scrapes that arrive meanwhile share its answer.
  let running: Promise<Buffer[]> | null = null;
  let waiting = 0;

  app.get('/metrics', { schema: { hide: true } }, async (request, reply) => {
    if (options.access === 'key') {
      const given = request.headers['zapi_key'] ?? request.headers['api_key'];
      if (typeof given !== 'string' || !keysMatch(given, app.deps.apiKey)) return reply.code(401).send({ message: 'Authorization required' });
    }
    if (running && waiting >= MAX_WAITING_SCRAPES) {
      return sendZapiError(reply, new ZapiError(503, 'Another scrape of /metrics is running and others wait for it; retry in a moment.', undefined, 'Metrics'));
    }
    let text: Buffer[];
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
    reply.header('content-length', text.reduce((n, b) => n + b.length, 0));
    return reply.send(Readable.from(text, { objectMode: false }));
  });
}
