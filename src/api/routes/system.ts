import type { FastifyInstance, FastifyRequest } from 'fastify';
import { zapiRoute } from '../zapi.js';
import { describeFarm } from '../farm-service.js';
import { dataplaneView } from '../present.js';
import { configDigest } from '../../config-doc/document.js';

/** nftfarm's own route: what the reconciler did last, and each farm's data-plane state. */
export async function systemRoutes(app: FastifyInstance): Promise<void> {
  const { store, dataplane } = app.deps;
  zapiRoute<FastifyRequest<{ Querystring: { farms?: 'true' | 'false' } }>>(app, {
    method: 'GET',
    url: '/system/status',
    operationId: 'getSystemStatus',
    summary: 'Reconciler and data-plane status',
    tags: ['system'],
    description: () => 'System status',
    querystring: {
      type: 'object',
      additionalProperties: false,
      properties: {
        farms: { type: 'string', enum: ['true', 'false'], description: "'false' leaves out the list of farms and the config digest (a cheap poll with thousands of farms)." },
      },
    },
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
              first_pass_at: {
                type: 'string',
                nullable: true,
                description: 'When the first reconcile pass after the daemon started succeeded: every farm stored then was in the kernel (a start with 10,000 farms takes seconds).',
              },
              last_error: { type: 'string', nullable: true },
              consecutive_failures: { type: 'integer' },
              passes: { type: 'integer' },
              last_pass: {
                type: 'object',
                nullable: true,
                description: 'The last reconcile pass that had something to do: full or incremental, its result and duration.',
                required: ['kind', 'result', 'ms'],
                properties: { kind: { type: 'string', enum: ['full', 'incremental'] }, result: { type: 'string' }, ms: { type: 'number' } },
              },
              config_digest: {
                type: 'string',
                description: 'SHA-256 of the document GET /system/config answers: equal on two nodes exactly when their configurations are (the router id aside).',
              },
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
    handler: async (req) => {
      const system = dataplane.system();
      const withFarms = req.query.farms !== 'false';
      return {
        description: 'System status',
        params: {
          mode: system.mode,
          store_generation: store.generation(),
          applied_generation: system.appliedGeneration,
          last_pass_at: system.lastPassAt,
          first_pass_at: system.firstPassAt,
          last_error: system.lastError,
          consecutive_failures: system.consecutiveFailures,
          passes: system.passes,
          last_pass: system.lastPass,
          // A hash of the whole configuration: left out of the cheap poll with the farms.
          ...(withFarms ? { config_digest: configDigest(store) } : {}),
          farms: !withFarms ? [] : store.snapshot().farms.map(({ farm, backends }) => {
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
