import type { SwaggerOptions } from '@fastify/swagger';
import { MAX_BACKENDS_PER_FARM, NAME_MAX_LENGTH, TTL_MAX_SECONDS } from '../model/limits.js';

export const API_VERSION = '4.0';

/** @fastify/swagger options: shared `$id` schemas become named components. */
export const openapiOptions: SwaggerOptions = {
  openapi: {
    openapi: '3.0.3',
    info: {
      title: 'nftfarm ZAPI v4.0 (L4xNAT)',
      description:
        'The L4xNAT part of the ZEVENET ZAPI v4.0, served by nftfarm. Every call needs the API key in the `ZAPI_KEY` (or `API_KEY`) header. ' +
        'Numbers may be sent as JSON numbers or numeric strings; booleans travel as the strings "true" and "false".\n\n' +
        'Every refusal is the envelope `{"description", "error": "true", "message"}` with a 4xx or 5xx status, whatever layer refuses ' +
        '(the router, the HTTP parser, the body parser, the limits below), except a missing or wrong key: 401 `{"message":"Authorization required"}`.\n\n' +
        `Limits: farm and health check names ${NAME_MAX_LENGTH} characters (in bodies and paths alike); bodies 1 MiB; request line and headers 16 KiB; ` +
        `a request must arrive whole within 30 s; persistence ttl 1-${TTL_MAX_SECONDS} s; ${MAX_BACKENDS_PER_FARM} backends per farm; ` +
        'VIPs and backends are unicast addresses. Each parameter schema states its own range.',
      version: API_VERSION,
      license: { name: 'MIT', url: 'https://opensource.org/licenses/MIT' },
    },
    servers: [{ url: '/' }],
    components: {
      securitySchemes: {
        ZapiKey: { type: 'apiKey', in: 'header', name: 'ZAPI_KEY' },
      },
    },
    security: [{ ZapiKey: [] }],
    tags: [
      { name: 'farms', description: 'L4xNAT farms' },
      { name: 'backends', description: 'Backends of a farm' },
      { name: 'farmguardian', description: 'Health checks' },
      { name: 'stats', description: 'Statistics' },
      { name: 'system', description: 'The appliance itself' },
      { name: 'cluster', description: "nftfarm's own routes for several nodes behind ECMP: BGP announcement of the VIPs, the declarative configuration" },
    ],
  },
  refResolver: {
    // Components are named after the schema's $id ("Farm", "ZapiError"...), not "def-0".
    buildLocalReference: (json, _baseUri, _fragment, i) => (typeof json.$id === 'string' ? json.$id : `def-${i}`),
  },
};
