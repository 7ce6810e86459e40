/**
 * Shared response schemas, registered once with `$id` and referenced by every route, so the
 * OpenAPI document has one named component per ZAPI object and generated clients are typed.
 */

const str = { type: 'string' } as const;
const int = { type: 'integer' } as const;
const boolString = { type: 'string', enum: ['true', 'false'] } as const;

export const zapiErrorSchema = {
  $id: 'ZapiError',
  type: 'object',
  description: 'The ZAPI error envelope. `params` lists the accepted parameters when no parameter was sent.',
  required: ['description', 'error', 'message'],
  properties: {
    description: str,
    error: { type: 'string', enum: ['true'] },
    message: str,
    problems: { type: 'array', items: str, description: "nftfarm's own routes (/system/bgp, /system/config): every problem found, one per item." },
    params: {
      type: 'array',
      items: {
        type: 'object',
        required: ['name'],
        properties: {
          name: str,
          description: str,
          interval: str,
          options: { type: 'array', items: str },
          possible_values: { type: 'array', items: str },
        },
      },
    },
  },
} as const;

export const unauthorizedSchema = {
  $id: 'Unauthorized',
  type: 'object',
  required: ['message'],
  properties: { message: { type: 'string', enum: ['Authorization required'] } },
} as const;

export const farmStatusSchema = {
  $id: 'FarmStatus',
  type: 'string',
  enum: ['down', 'critical', 'problem', 'maintenance', 'up'],
  description: 'down: stopped; critical: running with no backend up; problem: some backends down; maintenance: a backend in maintenance; up: all backends up.',
} as const;

export const backendStatusSchema = {
  $id: 'BackendStatus',
  type: 'string',
  enum: ['up', 'down', 'maintenance'],
} as const;

export const backendSchema = {
  $id: 'Backend',
  type: 'object',
  required: ['id', 'ip', 'port', 'weight', 'priority', 'max_conns', 'status'],
  properties: {
    id: int,
    ip: str,
    port: { type: 'integer', nullable: true, description: "null: the client's destination port." },
    weight: int,
    priority: int,
    max_conns: int,
    status: { $ref: 'BackendStatus#' },
    status_reason: { type: 'string', description: 'Why the data plane does not use this backend, when it does not.' },
  },
} as const;

export const farmSummarySchema = {
  $id: 'FarmSummary',
  type: 'object',
  required: ['farmname', 'profile', 'status', 'vip', 'vport'],
  properties: { farmname: str, profile: str, status: { $ref: 'FarmStatus#' }, vip: str, vport: str },
} as const;

export const dataplaneStatusSchema = {
  $id: 'DataplaneStatus',
  type: 'object',
  description: 'What the reconciler last did for this farm.',
  required: ['generation', 'applied_generation', 'state'],
  properties: {
    generation: { ...int, description: 'Store generation of the farm\'s last change.' },
    applied_generation: { type: 'integer', nullable: true, description: 'Store generation the kernel reflects for this farm.' },
    state: { type: 'string', enum: ['pending', 'applied', 'failed', 'stopped'] },
    error: { type: 'string', nullable: true },
    interface: { type: 'string', nullable: true },
    notice: {
      type: 'string',
      nullable: true,
      description: 'How the data plane serves a setting differently from its name (e.g. leastconn in dsr balances by weight).',
    },
  },
} as const;

export const farmDetailSchema = {
  $id: 'FarmDetail',
  type: 'object',
  required: ['algorithm', 'farmguardian', 'listener', 'nattype', 'persistence', 'protocol', 'sessions', 'status', 'ttl', 'vip', 'vport'],
  properties: {
    algorithm: str,
    farmguardian: { type: 'string', nullable: true },
    listener: { type: 'string', enum: ['l4xnat'] },
    nattype: str,
    persistence: str,
    protocol: str,
    sessions: { type: 'array', items: { $ref: 'Session#' } },
    status: { $ref: 'FarmStatus#' },
    ttl: int,
    vip: str,
    vport: str,
    dataplane: { $ref: 'DataplaneStatus#' },
  },
} as const;

export const sessionSchema = {
  $id: 'Session',
  type: 'object',
  description: 'A persistence session: the client key and the backend it sticks to.',
  required: ['client', 'id', 'backend_ip', 'backend_port', 'session', 'ttl', 'type'],
  properties: {
    client: { ...str, description: 'The client key, e.g. "10.0.0.1" (ip), "10.0.0.1 . 4242" (srcip_srcport), a MAC (srcmac).' },
    id: { ...int, description: 'The backend id.' },
    backend_ip: str,
    backend_port: { type: 'integer', nullable: true },
    session: { ...str, description: 'The same key (ZEVENET spelling).' },
    ttl: { type: 'integer', nullable: true, description: 'Seconds left before the session expires unless the client comes back.' },
    type: { type: 'string', enum: ['dynamic'] },
  },
} as const;

export const healthCheckSchema = {
  $id: 'HealthCheck',
  type: 'object',
  required: ['name', 'description', 'command', 'farms', 'log', 'interval', 'timeout', 'fall', 'rise', 'cut_conns', 'template', 'backend_alias'],
  properties: {
    name: str,
    description: str,
    command: str,
    farms: { type: 'array', items: str },
    log: boolString,
    interval: int,
    timeout: int,
    fall: { type: 'integer', description: 'Consecutive failed checks before a backend is marked down (nftfarm addition; default 1, as ZEVENET).' },
    rise: { type: 'integer', description: 'Consecutive passed checks before a down backend is up again (nftfarm addition; default 1).' },
    cut_conns: boolString,
    template: boolString,
    backend_alias: boolString,
  },
} as const;

/**
 * nftfarm's own counters, kept by nftables. Inbound only: under DSR replies go from the
 * backend straight to the client and the load balancer never sees them.
 */
const inboundCounters = {
  packets: { ...int, description: 'Client-to-backend packets (inbound only: under DSR the load balancer never sees replies).' },
  bytes: { ...int, description: 'Client-to-backend bytes, IP header included (inbound only).' },
  new_flows: { ...int, description: 'Flows the load balancer chose this backend for (a flow map miss).' },
} as const;

export const backendStatsSchema = {
  $id: 'BackendStats',
  type: 'object',
  required: ['id', 'ip', 'port', 'weight', 'priority', 'status', 'max_conns', 'established', 'pending', 'packets', 'bytes', 'new_flows'],
  properties: {
    id: int,
    ip: str,
    port: { type: 'integer', nullable: true },
    weight: int,
    priority: int,
    status: { $ref: 'BackendStatus#' },
    max_conns: int,
    established: { ...int, description: 'Flows pinned to this backend now (DSR: entries of the flow map).' },
    pending: { ...int, description: 'Connections not yet established; always 0 under DSR (the load balancer never sees replies).' },
    ...inboundCounters,
  },
} as const;

export const farmStatsSchema = {
  $id: 'FarmStats',
  type: 'object',
  required: ['farmname', 'profile', 'status', 'vip', 'vport', 'established', 'pending', 'packets', 'bytes', 'new_flows', 'dropped'],
  properties: {
    farmname: str,
    profile: str,
    status: { $ref: 'FarmStatus#' },
    vip: str,
    vport: str,
    established: { ...int, description: 'Flows pinned or tracked for the farm now.' },
    pending: { ...int, description: 'Always 0 under DSR (the load balancer never sees replies).' },
    ...inboundCounters,
    dropped: { ...int, description: 'Packets that reached the farm when no backend could take them.' },
  },
} as const;

export const sharedSchemas = [
  zapiErrorSchema,
  unauthorizedSchema,
  farmStatusSchema,
  backendStatusSchema,
  backendSchema,
  farmSummarySchema,
  dataplaneStatusSchema,
  sessionSchema,
  farmDetailSchema,
  healthCheckSchema,
  backendStatsSchema,
  farmStatsSchema,
];

/** `{ description, params, message? }` with the given params schema. */
export function successEnvelope(params: unknown, extra: Record<string, unknown> = {}, required: string[] = []): Record<string, unknown> {
  return {
    type: 'object',
    required: ['description', 'params', ...required],
    properties: { description: str, params, message: str, ...extra },
  };
}

/** `{ description, message, success: "true" }`: what a DELETE answers. */
export function deleteEnvelope(extra: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    type: 'object',
    required: ['description', 'message', 'success'],
    properties: { description: str, message: str, success: { type: 'string', enum: ['true'] }, ...extra },
  };
}
