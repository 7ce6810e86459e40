import Fastify, { type FastifyBaseLogger, type FastifyInstance } from 'fastify';
import swagger from '@fastify/swagger';
import swaggerUi from '@fastify/swagger-ui';
import type { Store } from './store/store.js';
import type { DataplaneView, HostView } from './model/runtime.js';
import type { CounterReader } from './observe/farm-counters.js';
import { createMetrics, type Metrics } from './metrics/metrics.js';
import { metricsRoute, type MetricsAccess } from './api/routes/metrics.js';
import { keysMatch } from './api/api-key.js';
import { sharedSchemas } from './api/schemas.js';
import { ZAPI_PREFIX, zapiErrorHandler } from './api/zapi.js';
import { openapiOptions } from './api/openapi.js';
import { farmRoutes } from './api/routes/farms.js';
import { backendRoutes } from './api/routes/backends.js';
import { healthCheckRoutes } from './api/routes/health-checks.js';
import { statsRoutes } from './api/routes/stats.js';
import { systemRoutes } from './api/routes/system.js';
import { backendSetupRoutes } from './api/routes/backend-setup.js';
import { clusterRoutes, type BgpStatusSource } from './api/routes/cluster.js';

export interface AppDeps {
  store: Store;
  apiKey: string;
  host: HostView;
  dataplane: DataplaneView;
  /** Live data-plane counters (stats routes, /metrics); without it they are zeros. */
  counters?: CounterReader;
  /** The process's Prometheus registry (the reconciler records into it too); a new one without it. */
  metrics?: Metrics;
  /** GET /metrics: 'open' (default), 'key' (needs the ZAPI key) or 'off'. */
  metricsAccess?: MetricsAccess;
  /** The BGP speaker's live state for GET /system/bgp; without it the settings alone. */
  bgp?: BgpStatusSource;
  /** The process logger (pino); without it the app logs nothing (tests). */
  loggerInstance?: FastifyBaseLogger;
}

declare module 'fastify' {
  interface FastifyInstance {
    deps: AppDeps;
  }
}

/** Builds the HTTP application. No I/O of its own: `server.ts` listens, tests inject. */
export async function buildApp(deps: AppDeps): Promise<FastifyInstance> {
  const app = Fastify({
    ...(deps.loggerInstance ? { loggerInstance: deps.loggerInstance } : { logger: false }),
    bodyLimit: 1024 * 1024,
    ajv: {
      customOptions: {
        // Unknown parameters are refused with a ZAPI message, never silently dropped.
        removeAdditional: false,
        // Numeric strings are accepted by the schemas themselves and normalized by the routes.
        coerceTypes: false,
        useDefaults: false,
        // All errors, so the handler can answer in ZEVENET's order of checks.
        allErrors: true,
      },
    },
  });
  app.decorate('deps', deps);
  // ZAPI bodies are JSON only: without a parser for text/plain, Fastify answers 415 for it.
  app.removeContentTypeParser('text/plain');
  // An empty JSON body is no body (curl scripts send the header on every call): the route
  // then answers in its own order, a 404 for a missing farm before the help answer.
  const parseJson = app.getDefaultJsonParser('error', 'error');
  app.removeContentTypeParser('application/json');
  // parseAs 'string': the body arrives as a string.
  app.addContentTypeParser('application/json', { parseAs: 'string' }, (request, body, done) => {
    if (body === '') done(null, undefined);
    else parseJson(request, body as string, done);
  });
  for (const schema of sharedSchemas) app.addSchema(schema);

  app.setErrorHandler(zapiErrorHandler);
  app.setNotFoundHandler((request, reply) => {
    reply.code(404).send({ description: 'Request not found', error: 'true', message: 'Request not found' });
  });

  await app.register(swagger, openapiOptions);
  await app.register(swaggerUi, { routePrefix: '/docs' });

  app.get('/healthz', { schema: { hide: true } }, async () => ({ status: 'ok' }));
  app.get('/openapi.json', { schema: { hide: true } }, async () => app.swagger());

  const metrics = deps.metrics ?? createMetrics();
  // By route pattern, so farm names never become label values.
  app.addHook('onResponse', async (request, reply) => {
    metrics.apiRequest(request.method, request.routeOptions.url ?? 'unmatched', reply.statusCode, reply.elapsedTime / 1000);
  });
  const metricsAccess = deps.metricsAccess ?? 'open';
  if (metricsAccess !== 'off') await app.register(metricsRoute, { metrics, access: metricsAccess });

  await app.register(
    async (zapi) => {
      zapi.addHook('onRequest', async (request, reply) => {
        const given = request.headers['zapi_key'] ?? request.headers['api_key'];
        if (typeof given !== 'string' || !keysMatch(given, deps.apiKey)) {
          return reply.code(401).send({ message: 'Authorization required' });
        }
      });
      zapi.setNotFoundHandler((request, reply) => {
        reply.code(404).send({ description: 'Request not found', error: 'true', message: 'Request not found' });
      });
      await zapi.register(farmRoutes);
      await zapi.register(backendRoutes);
      await zapi.register(healthCheckRoutes);
      await zapi.register(statsRoutes);
      await zapi.register(systemRoutes);
      await zapi.register(backendSetupRoutes);
      await zapi.register(clusterRoutes, { bgp: deps.bgp });
    },
    { prefix: ZAPI_PREFIX },
  );
  return app;
}
