import type { FastifyInstance, FastifyRequest } from 'fastify';
import type { Farm } from '../../model/farm.js';
import {
  linuxBackendSetup,
  LINUX_IFNAME_PATTERN,
  SETUP_OSES,
  windowsBackendSetup,
  WINDOWS_IFNAME_PATTERN,
  type SetupOs,
} from '../../model/backend-setup.js';
import { messages } from '../params.js';
import { badRequest, zapiRoute } from '../zapi.js';
import { farmPathParams, requireFarm } from '../farm-service.js';

type SetupRequest = FastifyRequest<{
  Params: { farmname: string };
  Querystring: { os?: SetupOs; nic?: string; loopback?: string };
}>;

export async function backendSetupRoutes(app: FastifyInstance): Promise<void> {
  zapiRoute<SetupRequest, Farm>(app, {
    method: 'GET',
    url: '/farms/:farmname/backend-setup',
    operationId: 'getBackendSetup',
    summary: 'A script that prepares a backend of a DSR farm',
    tags: ['farms'],
    params: farmPathParams,
    querystring: {
      type: 'object',
      additionalProperties: false,
      properties: {
        os: { type: 'string', enum: [...SETUP_OSES], description: 'linux (default): a sh script; windows: a PowerShell script.' },
        nic: { type: 'string', description: "Default name of the backend's NIC on the load balancer's network (eth0 / Ethernet)." },
        loopback: { type: 'string', description: 'windows only: name of the loopback adapter (default Loopback).' },
      },
    },
    description: (req) => `Backend set-up script for farm ${req.params.farmname}`,
    before: (req) => requireFarm(app, req.params.farmname),
    errorCodes: [400, 404],
    response: {
      200: { description: 'The script, as text.', content: { 'text/plain': { schema: { type: 'string' } } } },
    },
    handler: async (req, reply, farm) => {
      if (farm.nattype !== 'dsr') {
        throw badRequest(`The farm '${farm.name}' uses nattype '${farm.nattype}': backend set-up scripts are for nattype 'dsr'.`);
      }
      const os = req.query.os ?? 'linux';
      const nic = req.query.nic ?? (os === 'linux' ? 'eth0' : 'Ethernet');
      const loopback = req.query.loopback ?? 'Loopback';
      const pattern = new RegExp(os === 'linux' ? LINUX_IFNAME_PATTERN : WINDOWS_IFNAME_PATTERN);
      for (const [name, value] of [['nic', nic], ['loopback', loopback]] as const) {
        if (!pattern.test(value)) throw badRequest(messages.notValid(name, value));
      }
      reply.type('text/plain; charset=utf-8');
      return os === 'linux' ? linuxBackendSetup(farm, nic) : windowsBackendSetup(farm, nic, loopback);
    },
  });
}
