import Fastify, { type FastifyBaseLogger, type FastifyInstance, type FastifyReply } from 'fastify';
import swagger from '@fastify/swagger';
import swaggerUi from '@fastify/swagger-ui';
import type { Store } from './store/store.js';
import type { DataplaneView, HostView } from './model/runtime.js';
import type { CounterReader } from './observe/farm-counters.js';
import { createMetrics, type Metrics } from './metrics/metrics.js';
import { metricsRoute, type MetricsAccess } from './api/routes/metrics.js';
import { keysMatch } from './api/api-key.js';
import { sharedSchemas } from './api/schemas.js';
import { forbiddenKeys, frameworkError, MAX_PARAM_LENGTH, sendZapiError, transportError, ZAPI_PREFIX, zapiErrorHandler } from './api/zapi.js';
import { hardenSockets, onClientError } from './api/transport.js';
import { openapiOptions } from './api/openapi.js';
import { farmRoutes } from './api/routes/farms.js';
import { backendRoutes } from './api/routes/backends.js';
import { healthCheckRoutes } from './api/routes/health-checks.js';
import { statsRoutes } from './api/routes/stats.js';
import { FarmListCache } from './api/farm-list.js';
import { systemRoutes } from './api/routes/system.js';
import { auditRoutes } from './api/routes/audit.js';
import { auditWrites } from './api/audit.js';
import { AuditLog } from './store/audit.js';
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
  /** The audit trail of write requests; without it, one on the store's database. */
  audit?: AuditLog;
  /** Serve HTTPS with this certificate and key (PEM); plain HTTP without it. */
  tls?: { cert: Buffer; key: Buffer };
  /** A request must arrive whole (headers and body) within this time, or it is answered 408. Default 30 s. */
  requestTimeoutMs?: number;
}

declare module 'fastify' {
  interface FastifyInstance {
    deps: AppDeps & { audit: AuditLog };
  }
}

const isJson = (text: string): boolean => {
  try {
    JSON.parse(text);
    return true;
  } catch {
    return false;
  }
};

/** Builds the HTTP application. No I/O of its own: `server.ts` listens, tests inject. */
export async function buildApp(deps: AppDeps): Promise<FastifyInstance> {
  // Node checks request timeouts on this period (30 s by default, too coarse for a 30 s limit).
  const serverOptions = { connectionsCheckingInterval: 1000 };
  let closing = false;
  const app = Fastify({
    ...(deps.loggerInstance ? { loggerInstance: deps.loggerInstance } : { logger: false }),
    ...(deps.tls ? { https: { ...serverOptions, cert: deps.tls.cert, key: deps.tls.key } } : { http: serverOptions }),
    bodyLimit: 1024 * 1024,
    // A slow or stalled client cannot hold a connection open forever.
    requestTimeout: deps.requestTimeoutMs ?? 30_000,
    routerOptions: { maxParamLength: MAX_PARAM_LENGTH },
    // Errors raised before any route or hook runs answer in the envelope too: the router's...
    frameworkErrors: (error, _request, reply) => void sendZapiError(reply as unknown as FastifyReply, frameworkError(error)),
    // ...and Node's HTTP parser's (unknown methods, oversized headers, timeouts), on the raw socket.
    clientErrorHandler(error, socket) {
      deps.loggerInstance?.debug({ err: error }, 'refused a malformed request');
      onClientError(error, socket);
    },
    // Fastify's own 503 while closing is not in the envelope: the onRequest hook below answers it.
    return503OnClosing: false,
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
  // Answers go out through JSON.stringify: the response schemas document the API (OpenAPI,
  // checked against real answers by the tests) and are not compiled into a serializer per
  // route, which cost about 300 ms of every start (fast-json-stringify), when a restarted
  // daemon should answer within a second.
  app.setSerializerCompiler(() => (data) => JSON.stringify(data));
  hardenSockets(app.server);
  app.decorate('deps', { ...deps, audit: deps.audit ?? new AuditLog(deps.store.db) });
  app.addHook('preClose', (done) => {
    closing = true;
    done();
  });
  // Requests that still arrive on kept-alive connections while the server drains.
  app.addHook('onRequest', async (_request, reply) => {
    if (!closing) return;
    return sendZapiError(reply.header('connection', 'close'), transportError('closing'));
  });
  // ZAPI bodies are JSON only: without a parser for text/plain, Fastify answers 415 for it.
  app.removeContentTypeParser('text/plain');
  // An empty JSON body is no body (curl scripts send the header on every call): the route
  // then answers in its own order, a 404 for a missing farm before the help answer.
  const parseJson = app.getDefaultJsonParser('error', 'error');
  app.removeContentTypeParser('application/json');
  // parseAs 'string': the body arrives as a string.
  app.addContentTypeParser('application/json', { parseAs: 'string' }, (request, body, done) => {
    if (body === '') done(null, undefined);
    // The default parser refuses '__proto__' and 'constructor.prototype' keys (prototype
    // poisoning) with the same error as broken JSON: tell the two apart for the message.
    else parseJson(request, body as string, (err, value) => (err && isJson(body as string) ? done(forbiddenKeys(), undefined) : done(err, value)));
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
  // The reads of every farm (/metrics, /stats/farms) share one farm list, kept between reads.
  const farmList = new FarmListCache(deps.store, deps.dataplane);
  app.addHook('onClose', async () => farmList.close());
  if (metricsAccess !== 'off') await app.register(metricsRoute, { metrics, access: metricsAccess, farmList });

  await app.register(
    async (zapi) => {
      zapi.addHook('onRequest', async (request, reply) => {
        const given = request.headers['zapi_key'] ?? request.headers['api_key'];
        if (typeof given !== 'string' || !keysMatch(given, deps.apiKey)) {
          return reply.code(401).send({ message: 'Authorization required' });
        }
      });
      zapi.addHook('onSend', auditWrites(app.deps.audit));
      zapi.setNotFoundHandler((request, reply) => {
        reply.code(404).send({ description: 'Request not found', error: 'true', message: 'Request not found' });
      });
      await zapi.register(farmRoutes);
      await zapi.register(backendRoutes);
      await zapi.register(healthCheckRoutes);
      await zapi.register(statsRoutes, { farmList });
      await zapi.register(systemRoutes);
      await zapi.register(auditRoutes);
      await zapi.register(backendSetupRoutes);
      await zapi.register(clusterRoutes, { bgp: deps.bgp });
    },
    { prefix: ZAPI_PREFIX },
  );
  return app;
}
