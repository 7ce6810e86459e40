import type { FastifyInstance, FastifyRequest } from 'fastify';
import type { Farm } from '../../model/farm.js';
import { noCounters, type BackendCounters } from '../../observe/farm-counters.js';
import type { FarmListCache } from '../farm-list.js';
import { zapiRoute } from '../zapi.js';
import { counterDescriptor } from '../present.js';
import { describeFarm, farmInPath, farmPathParams, sessionViews } from '../farm-service.js';

type FarmRequest = FastifyRequest<{ Params: { farmname: string } }>;

const INBOUND_NOTE =
  'Counters are kept by nftables and read live. Under DSR they are inbound only (client to backend): replies never cross the load balancer, so there is nothing to count for them, and `pending` is 0.';

const farmStatsResponse = {
  type: 'object',
  required: ['description', 'backends', 'sessions', 'total_sessions'],
  properties: {
    description: { type: 'string' },
    backends: { type: 'array', items: { $ref: 'BackendStats#' } },
    sessions: { type: 'array', items: { $ref: 'Session#' } },
    total_sessions: { type: 'integer' },
  },
};

const ZERO: BackendCounters = { packets: 0, bytes: 0, newFlows: 0, established: 0 };
const inbound = (c: Omit<BackendCounters, 'established'>) => ({ packets: c.packets, bytes: c.bytes, new_flows: c.newFlows });

/** Live counters from the data plane (`deps.counters`); zeros where there is none (dry run, stopped farm). */
export async function statsRoutes(app: FastifyInstance, options: { farmList: FarmListCache }): Promise<void> {
  const counters = app.deps.counters ?? noCounters;

  zapiRoute(app, {
    method: 'GET',
    url: '/stats/farms',
    operationId: 'listFarmStats',
    summary: 'Connection counts and inbound counters of every farm',
    tags: ['stats'],
    description: () => 'List all farms stats',
    response: {
      200: {
        type: 'object',
        description: INBOUND_NOTE,
        required: ['description', 'farms'],
        properties: { description: { type: 'string' }, farms: { type: 'array', items: { $ref: 'FarmStats#' } } },
      },
    },
    // The body is written in the observer's worker, from the farm list kept between reads
    // (farm-list.ts): the event loop only hands over the bytes.
    handler: async (_request, reply) => {
      const list = options.farmList.current();
      const body = await (counters.statsJson ?? noCounters.statsJson!)(list);
      reply.type('application/json; charset=utf-8');
      return Buffer.from(body.buffer, body.byteOffset, body.byteLength);
    },
  });

  const farmOf = (req: FarmRequest) => farmInPath(app, req);
  const farmStats = async (_req: FarmRequest, _reply: unknown, farm: Farm) => {
    const { backends, stored, runtime } = describeFarm(app, farm);
    const c = farm.running ? await counters.read(counterDescriptor(farm, stored, runtime)) : null;
    const uidOf = new Map(stored.map((b) => [b.id, b.uid]));
    // The same sessions, in the same shape, as GET /farms/{f}.
    const sessions = await sessionViews(app, farm, stored);
    return {
      description: 'Get farm stats',
      backends: backends.map((b) => {
        const bc = c?.backends.get(uidOf.get(b.id) ?? -1) ?? ZERO;
        return {
          id: b.id,
          ip: b.ip,
          port: b.port,
          weight: b.weight,
          priority: b.priority,
          status: b.status,
          max_conns: b.max_conns,
          established: bc.established,
          pending: 0,
          ...inbound(bc),
        };
      }),
      sessions,
      total_sessions: sessions.length,
    };
  };

  // ZEVENET serves the same answer on both routes.
  for (const url of ['/stats/farms/:farmname', '/stats/farms/:farmname/backends']) {
    zapiRoute<FarmRequest, Farm>(app, {
      method: 'GET',
      url,
      operationId: url.endsWith('/backends') ? 'getFarmBackendStats' : 'getFarmStats',
      summary: url.endsWith('/backends') ? 'Connection counts and inbound counters of the backends of one farm' : 'Connection counts and inbound counters of one farm and its backends',
      tags: ['stats'],
      params: farmPathParams,
      description: () => 'Get farm stats',
      before: farmOf,
      response: { 200: { ...farmStatsResponse, description: INBOUND_NOTE } },
      handler: farmStats,
    });
  }
}
