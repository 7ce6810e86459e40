/**
 * The audit trail's HTTP side: every write request (POST, PUT, DELETE) that passed the key
 * check is recorded before its answer is sent, so an acknowledged write is always in the
 * trail. Refused ones (4xx, 5xx) are recorded too, their status says so; 401s are not: anyone
 * can send those, and they would push real entries out of the bounded table.
 */
import { createHash } from 'node:crypto';
import type { FastifyReply, FastifyRequest } from 'fastify';
import type { AuditLog } from '../store/audit.js';
import { NAME_MAX_LENGTH } from '../model/limits.js';

const WRITE_METHODS = new Set(['POST', 'PUT', 'DELETE', 'PATCH']);

/** Names the key without revealing it: 'sha256:' and 16 hex digits of its SHA-256. */
export const keyFingerprint = (key: string): string => `sha256:${createHash('sha256').update(key).digest('hex').slice(0, 16)}`;

/** The farm a request is about: named in the path, or in the body of POST /farms. */
function farmOf(request: FastifyRequest): string | null {
  const fromPath = (request.params as Record<string, unknown> | undefined)?.farmname;
  const fromBody = (request.body as Record<string, unknown> | undefined)?.farmname;
  const name = typeof fromPath === 'string' ? fromPath : typeof fromBody === 'string' ? fromBody : null;
  return name === null ? null : name.slice(0, NAME_MAX_LENGTH);
}

/** An onSend hook for the ZAPI routes (it runs for errors and unknown routes too). */
export function auditWrites(audit: AuditLog) {
  return async (request: FastifyRequest, reply: FastifyReply, payload: unknown): Promise<unknown> => {
    if (!WRITE_METHODS.has(request.method) || reply.statusCode === 401) return payload;
    const key = request.headers['zapi_key'] ?? request.headers['api_key'];
    try {
      audit.record({
        at: new Date(),
        method: request.method,
        route: request.routeOptions.url ?? 'unmatched',
        farm: farmOf(request),
        keyFingerprint: keyFingerprint(typeof key === 'string' ? key : ''),
        remote: request.ip,
        status: reply.statusCode,
      });
    } catch (err) {
      // The write itself is committed: a failed audit row must not turn it into an error.
      request.log.error({ err }, 'could not record the request in the audit trail');
    }
    return payload;
  };
}
