import type { FastifyInstance } from 'fastify';
import { zapiRoute } from '../zapi.js';
import { describeFarm } from './farms.js';
import { dataplaneView } from '../present.js';

/** nftfarm's own route: what the reconciler did last, and each farm's data-plane state. */
export async function systemRoutes(app: FastifyInstance): Promise<void> {
  const { store, dataplane } = app.deps;
  zapiRoute(app, {
    method: 'GET',
    url: '/system/status',
    operationId: 'getSystemStatus',
    summary: 'Reconciler and data-plane status',
    tags: ['system'],
    description: () => 'System status',
    response: {
      200: {
        type: 'object',
        required: ['description', 'params'],
        properties: {
          description: { type: 'string' },
          params: {
            type: 'object',
            required: ['mode', 'store_generation', 'applied_generation', 'last_pass_at', 'last_error', 'consecutive_failures', 'passes', 'farms'],
            properties: {
              mode: { type: 'string', enum: ['kernel', 'dry-run', 'off'] },
              store_generation: { type: 'integer' },
              applied_generation: { type: 'integer', nullable: true },
              last_pass_at: { type: 'string', nullable: true },
              last_error: { type: 'string', nullable: true },
              consecutive_failures: { type: 'integer' },
              passes: { type: 'integer' },
              farms: {
                type: 'array',
                items: {
                  type: 'object',
                  required: ['farmname', 'status', 'dataplane'],
                  properties: { farmname: { type: 'string' }, status: { $ref: 'FarmStatus#' }, dataplane: { $ref: 'DataplaneStatus#' } },
                },
              },
            },
          },
        },
      },
    },
    handler: async () => {
      const system = dataplane.system();
      return {
        description: 'System status',
        params: {
          mode: system.mode,
          store_generation: store.generation(),
          applied_generation: system.appliedGeneration,
          last_pass_at: system.lastPassAt,
          last_error: system.lastError,
          consecutive_failures: system.consecutiveFailures,
          passes: system.passes,
          farms: store.snapshot().farms.map(({ farm, backends }) => {
            const { status, runtime } = describeFarm(app, farm, backends);
            return {
              farmname: farm.name,
              status,
              dataplane: dataplaneView(farm, runtime),
            };
          }),
        },
      };
    },
  });
}
