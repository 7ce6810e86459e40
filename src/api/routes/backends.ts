import type { FastifyInstance, FastifyRequest } from 'fastify';
import type { Backend, Farm } from '../../model/farm.js';
import type { BackendChanges, NewBackend } from '../../store/store.js';
import { definedOnly, enumParam, messages, ParamError, parseParams } from '../params.js';
import { badRequest, notFound, zapiRoute } from '../zapi.js';
import { deleteEnvelope, successEnvelope } from '../schemas.js';
import { backendIpParam, backendPortParam, maxConnsParam, priorityParam, weightParam } from '../farm-params.js';
import { backendView } from '../present.js';
import { checkedWrite } from '../checked-write.js';
import { checkFarmRules, describeFarm, farmInPath, farmPathParams } from '../farm-service.js';

type FarmRequest = FastifyRequest<{ Params: { farmname: string }; Body: Record<string, unknown> }>;
type BackendRequest = FastifyRequest<{ Params: { farmname: string; id: string }; Body: Record<string, unknown> }>;

const backendSpecs = {
  ip: backendIpParam,
  port: backendPortParam,
  weight: weightParam,
  priority: priorityParam,
  max_conns: maxConnsParam,
};

const maintenanceSpecs = {
  action: enumParam(['up', 'maintenance'] as const),
  mode: enumParam(['drain', 'cut'] as const),
};

const backendPathParams = {
  type: 'object',
  required: ['farmname', 'id'],
  properties: { ...farmPathParams.properties, id: { type: 'string', pattern: '^[0-9]{1,9}$' } },
} as const;

const farmStatusProp = { status: { $ref: 'FarmStatus#' } };

/** What the backend routes load before looking at the body. */
interface LoadedBackend {
  farm: Farm;
  backend: Backend;
}

const BACKEND_NOT_FOUND = 'Could not find a backend with such id.';

export async function backendRoutes(app: FastifyInstance): Promise<void> {
  const { store } = app.deps;

  const farmOf = (req: FarmRequest | BackendRequest) => farmInPath(app, req);
  const backendOf = (req: BackendRequest): LoadedBackend => {
    const farm = farmOf(req);
    const backend = store.getBackend(farm.id, Number(req.params.id));
    if (!backend) throw notFound(BACKEND_NOT_FOUND);
    return { farm, backend };
  };
  const duplicate = (farmName: string, ip: string) => badRequest(`The IP ${ip} is already set in farm ${farmName}`);
  const sameTarget = (a: Pick<Backend, 'ip' | 'port'>, b: Pick<Backend, 'ip' | 'port'>) => a.ip === b.ip && a.port === b.port;

  zapiRoute<FarmRequest, Farm>(app, {
    method: 'GET',
    url: '/farms/:farmname/backends',
    operationId: 'listBackends',
    summary: 'List the backends of a farm',
    tags: ['backends'],
    params: farmPathParams,
    description: () => 'List backends',
    before: farmOf,
    response: { 200: successEnvelope({ type: 'array', items: { $ref: 'Backend#' } }) },
    handler: async (_req, _reply, farm) => ({ description: 'List backends', params: describeFarm(app, farm).backends }),
  });

  zapiRoute<FarmRequest, Farm>(app, {
    method: 'POST',
    url: '/farms/:farmname/backends',
    operationId: 'addBackend',
    summary: 'Add a backend; its id is the lowest free one',
    tags: ['backends'],
    params: farmPathParams,
    description: () => 'New farm backend',
    body: { specs: backendSpecs, required: ['ip'] },
    before: farmOf,
    errorCodes: [409],
    response: { 201: successEnvelope({ $ref: 'Backend#' }, farmStatusProp, ['message', 'status']) },
    handler: async (req, reply) => {
      const p = parseParams(backendSpecs, req.body, ['ip']);
      const candidate: NewBackend = { ip: p.ip as string, port: p.port ?? null, weight: p.weight ?? 1, priority: p.priority ?? 1, maxConns: p.max_conns ?? 0 };
      const { farm, added } = await checkedWrite(
        app,
        () => {
          const farm = farmOf(req);
          return { vip: farm.vip, ips: [...store.listBackends(farm.id).map((b) => b.ip), candidate.ip] };
        },
        (network, generation) => {
          // The farm as it is now: another request may have replaced it since the lookup.
          const farm = farmOf(req);
          const backends = store.listBackends(farm.id);
          if (backends.some((b) => sameTarget(b, candidate))) throw duplicate(farm.name, candidate.ip);
          // The candidate has no id yet, so the rules' messages name it "the backend".
          checkFarmRules(app, farm, [...backends, candidate], network, null);
          return { farm, added: store.insertBackend(farm.id, candidate, generation) };
        },
      );
      reply.code(201);
      const { status, runtime } = describeFarm(app, farm);
      return { description: 'New farm backend', params: backendView(added, farm, runtime), message: 'Backend added.', status };
    },
  });

  zapiRoute<BackendRequest, LoadedBackend>(app, {
    method: 'PUT',
    url: '/farms/:farmname/backends/:id',
    operationId: 'modifyBackend',
    summary: 'Modify a backend',
    tags: ['backends'],
    params: backendPathParams,
    description: () => 'Modify backend',
    body: { specs: backendSpecs },
    before: backendOf,
    errorCodes: [409],
    response: { 200: successEnvelope({ type: 'object', additionalProperties: true }, farmStatusProp, ['message', 'status']) },
    handler: async (req) => {
      const p = parseParams(backendSpecs, req.body);
      const changes: BackendChanges = { ip: p.ip, port: p.port, weight: p.weight, priority: p.priority, maxConns: p.max_conns };
      const farm = await checkedWrite(
        app,
        () => {
          const { farm, backend } = backendOf(req);
          return { vip: farm.vip, ips: [...store.listBackends(farm.id).map((b) => b.ip), p.ip ?? backend.ip] };
        },
        (network, generation) => {
          // The farm and backend as they are now, by name and id: what this transaction writes.
          const { farm, backend: stored } = backendOf(req);
          const merged: Backend = { ...stored, ...definedOnly(changes) };
          const others = store.listBackends(farm.id).filter((b) => b.id !== stored.id);
          if (others.some((b) => sameTarget(b, merged))) throw duplicate(farm.name, merged.ip);
          checkFarmRules(app, farm, [...others, merged], network, null);
          store.updateBackend(farm.id, stored.id, changes, generation);
          return farm;
        },
      );
      // The address as stored: IPv6 in its canonical form.
      return { description: 'Modify backend', params: p.ip === undefined ? req.body : { ...req.body, ip: p.ip }, message: 'Backend modified.', status: describeFarm(app, farm).status };
    },
  });

  zapiRoute<BackendRequest, LoadedBackend>(app, {
    method: 'DELETE',
    url: '/farms/:farmname/backends/:id',
    operationId: 'deleteBackend',
    summary: 'Remove a backend',
    tags: ['backends'],
    params: backendPathParams,
    description: () => 'Delete backend',
    before: backendOf,
    response: { 200: deleteEnvelope(farmStatusProp) },
    handler: async (req, _reply, { farm, backend }) => {
      store.write((generation) => store.deleteBackend(farm.id, backend.id, generation));
      return { description: 'Delete backend', message: 'Backend removed', status: describeFarm(app, farm).status, success: 'true' };
    },
  });

  zapiRoute<BackendRequest, LoadedBackend>(app, {
    method: 'DELETE',
    url: '/farms/:farmname/backends/:id/sessions',
    operationId: 'deleteBackendSessions',
    summary: 'Forget the persistence sessions that stick clients to this backend',
    tags: ['backends'],
    params: backendPathParams,
    description: () => 'Delete backend sessions',
    before: backendOf,
    response: { 200: deleteEnvelope({ sessions: { type: 'integer', description: 'How many sessions were deleted.' } }) },
    handler: async (_req, _reply, { farm, backend }) => {
      const sessions = await app.deps.dataplane.flushSessions(farm.id, backend.uid);
      return {
        description: 'Delete backend sessions',
        message: `${sessions} sessions of the backend ${backend.id} in farm ${farm.name} have been deleted.`,
        sessions,
        success: 'true',
      };
    },
  });

  zapiRoute<BackendRequest, LoadedBackend>(app, {
    method: 'PUT',
    url: '/farms/:farmname/backends/:id/maintenance',
    operationId: 'setBackendMaintenance',
    summary: 'Put a backend in maintenance (drain: no new flows; cut: also drop its flows) or back up',
    tags: ['backends'],
    params: backendPathParams,
    description: () => 'Set backend status',
    body: { specs: maintenanceSpecs, required: ['action'] },
    before: backendOf,
    response: {
      200: successEnvelope(
        {
          type: 'object',
          required: ['action', 'farm'],
          properties: {
            action: { type: 'string' },
            mode: { type: 'string' },
            farm: { type: 'object', required: ['status'], properties: farmStatusProp },
          },
        },
        farmStatusProp,
        ['message', 'status'],
      ),
    },
    handler: async (req, _reply, { farm, backend }) => {
      const p = parseParams(maintenanceSpecs, req.body, ['action']);
      // `mode` only belongs to the maintenance action: with `up` it is an unknown parameter.
      if (p.action === 'up' && p.mode !== undefined) throw new ParamError(messages.unknown(['mode'], ['action']));
      const maintenance = p.action === 'up' ? 'none' : (p.mode ?? 'drain');
      store.write((generation) => store.updateBackend(farm.id, backend.id, { maintenance }, generation));
      const status = describeFarm(app, farm).status;
      return {
        description: 'Set backend status',
        params: { action: p.action as string, ...(p.action === 'maintenance' ? { mode: maintenance } : {}), farm: { status } },
        message: `The action ${p.action} has been performed in farm ${farm.name}.`,
        status,
      };
    },
  });
}
