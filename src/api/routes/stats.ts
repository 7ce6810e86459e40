import type { FastifyInstance, FastifyRequest } from 'fastify';
import type { Farm } from '../../model/farm.js';
import { zapiRoute } from '../zapi.js';
import { describeFarm, farmInPath, farmPathParams, farmSummary } from './farms.js';

type FarmRequest = FastifyRequest<{ Params: { farmname: string } }>;

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

/** Counters come from the data plane in a later issue; until then they are zeros. */
export async function statsRoutes(app: FastifyInstance): Promise<void> {
  const { store } = app.deps;

  zapiRoute(app, {
    method: 'GET',
    url: '/stats/farms',
    summary: 'Connection counts of every farm',
    tags: ['stats'],
    description: () => 'List all farms stats',
    response: {
      200: {
        type: 'object',
        required: ['description', 'farms'],
        properties: { description: { type: 'string' }, farms: { type: 'array', items: { $ref: 'FarmStats#' } } },
      },
    },
    handler: async () => ({
      description: 'List all farms stats',
      farms: store.listFarms().map((farm) => ({ ...farmSummary(app, farm), established: 0, pending: 0 })),
    }),
  });

  const farmOf = (req: FarmRequest) => farmInPath(app, req);
  const farmStats = async (_req: FarmRequest, _reply: unknown, farm: Farm) => {
    const { backends } = describeFarm(app, farm);
    return {
      description: 'Get farm stats',
      backends: backends.map((b) => ({
        id: b.id,
        ip: b.ip,
        port: b.port,
        weight: b.weight,
        priority: b.priority,
        status: b.status,
        max_conns: b.max_conns,
        established: 0,
        pending: 0,
      })),
      sessions: [],
      total_sessions: 0,
    };
  };

  // ZEVENET serves the same answer on both routes.
  for (const url of ['/stats/farms/:farmname', '/stats/farms/:farmname/backends']) {
    zapiRoute<FarmRequest, Farm>(app, {
      method: 'GET',
      url,
      summary: url.endsWith('/backends') ? 'Connection counts of the backends of one farm' : 'Connection counts of one farm and its backends',
      tags: ['stats'],
      params: farmPathParams,
      description: () => 'Get farm stats',
      before: farmOf,
      response: { 200: farmStatsResponse },
      handler: farmStats,
    });
  }
}
