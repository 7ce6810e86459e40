import type { SwaggerOptions } from '@fastify/swagger';

export const API_VERSION = '4.0';

/** @fastify/swagger options: shared `$id` schemas become named components. */
export const openapiOptions: SwaggerOptions = {
  openapi: {
    openapi: '3.0.3',
    info: {
      title: 'nftfarm ZAPI v4.0 (L4xNAT)',
      description:
        'The L4xNAT part of the ZEVENET ZAPI v4.0, served by nftfarm. Every call needs the API key in the `ZAPI_KEY` (or `API_KEY`) header. ' +
        'Numbers may be sent as JSON numbers or numeric strings; booleans travel as the strings "true" and "false".',
      version: API_VERSION,
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
