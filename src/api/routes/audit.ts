import type { FastifyInstance, FastifyRequest } from 'fastify';
import { FARMNAME_PATTERN } from '../farm-params.js';
import { NAME_MAX_LENGTH } from '../../model/limits.js';
import { messages } from '../params.js';
import { badRequest, zapiRoute } from '../zapi.js';

type AuditRequest = FastifyRequest<{ Querystring: { limit?: string; before?: string; farm?: string } }>;

const MAX_LIMIT = 1000;

const entrySchema = {
  type: 'object',
  required: ['id', 'time', 'method', 'route', 'farm', 'key_fingerprint', 'remote', 'status', 'accepted'],
  properties: {
    id: { type: 'integer', description: 'Grows with every entry; the cursor of the pages.' },
    time: { type: 'string', format: 'date-time' },
    method: { type: 'string' },
    route: { type: 'string', description: "The route pattern, e.g. /zapi/v4.0/zapi.cgi/farms/:farmname ('unmatched': no route)." },
    farm: { type: 'string', nullable: true, description: 'The farm named in the path or the body (cut to 64 characters).' },
    key_fingerprint: { type: 'string', description: "'sha256:' and 16 hex digits of the SHA-256 of the key used (never the key)." },
    remote: { type: 'string', description: 'The client address.' },
    status: { type: 'integer', description: 'The HTTP status answered.' },
    accepted: { type: 'string', enum: ['true', 'false'], description: '"true" for a 2xx answer (the write was done), "false" for a refused one.' },
  },
} as const;

/** GET /system/audit: the audit trail, newest first, in pages. */
export async function auditRoutes(app: FastifyInstance): Promise<void> {
  zapiRoute<AuditRequest>(app, {
    method: 'GET',
    url: '/system/audit',
    operationId: 'listAuditEntries',
    summary: 'The audit trail: every write request that passed the key check, newest first (the newest 100,000 are kept)',
    tags: ['system'],
    querystring: {
      type: 'object',
      additionalProperties: false,
      properties: {
        limit: { type: 'string', pattern: '^[0-9]{1,4}$', description: `Entries per page, 1-${MAX_LIMIT} (default 100).` },
        before: { type: 'string', pattern: '^[0-9]{1,15}$', description: "Only entries older than this id: the previous page's next_before." },
        farm: { type: 'string', pattern: FARMNAME_PATTERN, maxLength: NAME_MAX_LENGTH, description: 'Only the entries about this farm.' },
      },
    },
    description: () => 'Audit trail',
    errorCodes: [400],
    response: {
      200: {
        type: 'object',
        required: ['description', 'params', 'next_before'],
        properties: {
          description: { type: 'string' },
          params: { type: 'array', items: entrySchema },
          next_before: { type: 'integer', nullable: true, description: 'Pass it as `before` for the next page; null on the last one.' },
        },
      },
    },
    handler: async (req) => {
      const limit = req.query.limit === undefined ? 100 : Number(req.query.limit);
      if (limit < 1 || limit > MAX_LIMIT) throw badRequest(messages.integerBetween('limit', 1, MAX_LIMIT));
      const page = app.deps.audit.list({
        limit,
        ...(req.query.before !== undefined ? { before: Number(req.query.before) } : {}),
        ...(req.query.farm !== undefined ? { farm: req.query.farm } : {}),
      });
      return {
        description: 'Audit trail',
        params: page.entries.map((e) => ({
          id: e.id,
          time: e.at,
          method: e.method,
          route: e.route,
          farm: e.farm,
          key_fingerprint: e.keyFingerprint,
          remote: e.remote,
          status: e.status,
          accepted: e.status >= 200 && e.status < 300 ? 'true' : 'false',
        })),
        next_before: page.nextBefore,
      };
    },
  });
}
