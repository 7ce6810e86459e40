import type { FastifyInstance, FastifyRequest } from 'fastify';
import type { Farm } from '../../model/farm.js';
import type { FarmChanges } from '../../store/store.js';
import { startConflict } from '../../model/rules.js';
import { parseVport } from '../../model/ports.js';
import { definedOnly, enumParam, parseParams } from '../params.js';
import { badRequest, notFound, ZapiError, zapiRoute } from '../zapi.js';
import { deleteEnvelope, successEnvelope } from '../schemas.js';
import {
  algorithmParam,
  farmnameParam,
  nattypeParam,
  persistenceParam,
  protocolParam,
  ttlParam,
  vipParam,
  vportParam,
} from '../farm-params.js';
import { dataplaneView, persistenceView } from '../present.js';
import { checkedWrite } from '../checked-write.js';
import { checkFarmRules, describeFarm, farmInPath, farmPathParams, farmSummary, requireFarm, sessionViews } from '../farm-service.js';

type FarmRequest = FastifyRequest<{ Params: { farmname: string } }>;
type FarmBodyRequest = FastifyRequest<{ Params: { farmname: string }; Body: Record<string, unknown> }>;
type CreateRequest = FastifyRequest<{ Body: Record<string, unknown> }>;

const createSpecs = {
  farmname: farmnameParam,
  profile: enumParam(['l4xnat'] as const),
  vip: vipParam,
  vport: vportParam,
  copy_from: farmnameParam,
};

const modifySpecs = {
  newfarmname: farmnameParam,
  vip: vipParam,
  vport: vportParam,
  protocol: protocolParam,
  nattype: nattypeParam,
  algorithm: algorithmParam,
  persistence: persistenceParam,
  ttl: ttlParam,
};

const actionSpecs = { action: enumParam(['stop', 'start', 'restart'] as const) };


const rangeProblem = (vport: string): string | null => {
  if (parseVport(vport)) return null;
  const bad = vport.split(',').find((part) => {
    const [low, high] = part.split(':').map(Number);
    return high !== undefined && (low as number) > high;
  });
  return bad ? `Range ${bad} in virtual port is not a valid value.` : 'The virtual port must be an acceptable value and must be available.';
};

const summaryParams = { type: 'array', items: { $ref: 'FarmSummary#' } };

export async function farmRoutes(app: FastifyInstance): Promise<void> {
  const { store } = app.deps;

  zapiRoute(app, {
    method: 'GET',
    url: '/farms',
    operationId: 'listFarms',
    summary: 'List the farms',
    tags: ['farms'],
    description: () => 'List farms',
    response: { 200: successEnvelope(summaryParams) },
    handler: async () => ({
      description: 'List farms',
      // One store read for every farm and its backends.
      params: store.snapshot().farms.map(({ farm, backends }) => farmSummary(app, farm, backends)),
    }),
  });

  zapiRoute<CreateRequest>(app, {
    method: 'POST',
    url: '/farms',
    operationId: 'createFarm',
    summary: 'Create a farm; it starts at once',
    tags: ['farms'],
    description: () => 'Creating a farm',
    body: { specs: createSpecs, required: ['farmname', 'profile', 'vip', 'vport'] },
    before: (req) => {
      const { farmname, copy_from: copyFrom } = req.body ?? {};
      if (typeof farmname === 'string' && store.getFarm(farmname)) {
        throw badRequest('Error trying to create a new farm, the farm name already exists.');
      }
      // A name no farm can have is a bad parameter (400, from the body checks), not a missing farm.
      if (farmnameParam.parse(copyFrom) !== undefined && !store.getFarm(copyFrom as string)) throw notFound(`The farm '${copyFrom}' does not exist.`);
    },
    errorCodes: [404, 409],
    response: {
      201: successEnvelope(
        {
          type: 'object',
          required: ['farmname', 'profile', 'vip', 'vport', 'interface'],
          properties: {
            farmname: { type: 'string' },
            profile: { type: 'string' },
            vip: { type: 'string' },
            vport: { type: 'string' },
            interface: { type: 'string' },
            copy_from: { type: 'string' },
          },
        },
        {},
        ['message'],
      ),
    },
    handler: async (req, reply) => {
      const p = parseParams(createSpecs, req.body, ['farmname', 'profile', 'vip', 'vport']);
      const name = p.farmname as string;
      const vport = p.vport as string;
      const vportProblem = rangeProblem(vport);
      if (vportProblem) throw badRequest(vportProblem);
      const sourceOf = () => {
        if (p.copy_from === undefined) return undefined;
        const source = store.getFarm(p.copy_from);
        if (!source) throw notFound(`The farm '${p.copy_from}' does not exist.`);
        return { farm: source, backends: store.listBackends(source.id) };
      };
      const network = await checkedWrite(
        app,
        () => ({ vip: p.vip as string, ips: sourceOf()?.backends.map((b) => b.ip) ?? [] }),
        (network, generation) => {
          if (store.getFarm(name)) throw badRequest('Error trying to create a new farm, the farm name already exists.');
          // The source as it is now, not as it was before the lookup.
          const copied = sourceOf();
          const source = copied?.farm;
          const sourceBackends = copied?.backends ?? [];
          const draft = {
            name,
            vip: p.vip as string,
            vport,
            // '*' means every port of every protocol, so it makes an 'all' farm (as in ZEVENET).
            protocol: vport === '*' ? 'all' : source && source.protocol !== 'all' ? source.protocol : 'tcp',
            nattype: source?.nattype ?? 'nat',
            algorithm: source?.algorithm ?? 'weight',
            persistence: source?.persistence ?? '',
            ttl: source?.ttl ?? 60,
            running: true,
          } as const;
          checkFarmRules(app, { ...draft, id: -1, profile: 'l4xnat', generation, slot: -1 }, sourceBackends, network);
          const farm = store.insertFarm(draft, generation);
          for (const b of sourceBackends) store.insertBackend(farm.id, b, generation);
          const check = source && store.farmCheckName(source.id);
          if (check) store.linkHealthCheck(farm.id, check, generation);
          return network;
        },
      );
      reply.code(201);
      return {
        description: 'Creating a farm',
        // The VIP as stored: IPv6 in its canonical form.
        params: { ...(req.body as Record<string, string>), vip: p.vip as string, interface: network.interface },
        message: `The farm ${name} has been created successfully.`,
      };
    },
  });

  zapiRoute<FarmRequest, Farm>(app, {
    method: 'GET',
    url: '/farms/:farmname',
    operationId: 'getFarm',
    summary: 'Show a farm with its backends',
    tags: ['farms'],
    params: farmPathParams,
    description: (req) => `List farm ${req.params.farmname}`,
    before: (req) => requireFarm(app, req.params.farmname),
    response: {
      200: successEnvelope({ $ref: 'FarmDetail#' }, { backends: { type: 'array', items: { $ref: 'Backend#' } } }, ['backends']),
    },
    handler: async (_req, _reply, farm) => {
      const { backends, status, runtime, stored } = describeFarm(app, farm);
      return {
        description: `List farm ${farm.name}`,
        params: {
          algorithm: farm.algorithm,
          farmguardian: store.farmCheckName(farm.id),
          listener: 'l4xnat',
          nattype: farm.nattype,
          persistence: persistenceView(farm.persistence),
          protocol: farm.protocol,
          sessions: await sessionViews(app, farm, stored),
          status,
          ttl: farm.ttl,
          vip: farm.vip,
          vport: farm.vport,
          dataplane: dataplaneView(farm, runtime),
        },
        backends,
      };
    },
  });

  zapiRoute<FarmRequest, Farm>(app, {
    method: 'GET',
    url: '/farms/:farmname/status',
    operationId: 'getFarmStatus',
    summary: 'Show the status of a farm',
    tags: ['farms'],
    params: farmPathParams,
    description: (req) => `Show farm ${req.params.farmname} status`,
    before: (req) => requireFarm(app, req.params.farmname),
    response: {
      200: successEnvelope({ type: 'object', required: ['status'], properties: { status: { $ref: 'FarmStatus#' } } }),
    },
    handler: async (_req, _reply, farm) => {
      return { description: `Show farm ${farm.name} status`, params: { status: describeFarm(app, farm).status } };
    },
  });

  zapiRoute<FarmBodyRequest, Farm>(app, {
    method: 'PUT',
    url: '/farms/:farmname',
    operationId: 'modifyFarm',
    summary: 'Modify a farm',
    tags: ['farms'],
    params: farmPathParams,
    description: (req) => `Modify L4xNAT farm '${req.params.farmname}'`,
    body: { specs: modifySpecs },
    before: (req) => {
      const farm = farmInPath(app, req);
      if (req.body?.algorithm === 'prio') throw new ZapiError(410, "'Prio' algorithm is not supported anymore.");
      return farm;
    },
    errorCodes: [409, 410],
    response: {
      200: successEnvelope({ type: 'object', additionalProperties: true }, {}, ['message']),
    },
    handler: async (req, _reply, farm) => {
      const p = parseParams(modifySpecs, req.body);
      const echo: Record<string, unknown> = { ...req.body };
      if (p.vip !== undefined) echo.vip = p.vip;
      // As in ZEVENET: protocol 'all' and vport '*' go together, so either one sets both.
      if (p.protocol === 'all' || p.vport === '*') {
        p.protocol = 'all';
        p.vport = '*';
        echo.protocol = 'all';
        echo.vport = '*';
      }
      if (p.persistence !== undefined) echo.persistence = persistenceView(p.persistence);
      if (p.ttl !== undefined) echo.ttl = p.ttl;
      const changes: FarmChanges = {
        name: p.newfarmname,
        vip: p.vip,
        vport: p.vport,
        protocol: p.protocol,
        nattype: p.nattype,
        algorithm: p.algorithm === 'prio' ? undefined : p.algorithm,
        persistence: p.persistence,
        ttl: p.ttl,
      };
      const updated = await checkedWrite(
        app,
        () => {
          const current = farmInPath(app, req);
          return { vip: p.vip ?? current.vip, ips: store.listBackends(current.id).map((b) => b.ip) };
        },
        (network, generation) => {
          // The farm as it is now, by name: what this transaction checks and writes.
          const current = farmInPath(app, req);
          const protocol = p.protocol ?? current.protocol;
          const vport = p.vport ?? current.vport;
          if (p.protocol !== undefined && protocol !== 'all' && vport === '*') throw badRequest(`Protocol can not be '${protocol}' with port '*'`);
          if (p.vport !== undefined && vport !== '*' && protocol === 'all') throw badRequest(`Port can not be '${vport}' with protocol 'all'`);
          const vportProblem = p.vport === undefined ? null : rangeProblem(p.vport);
          if (vportProblem) throw badRequest(vportProblem);
          if (p.newfarmname !== undefined && p.newfarmname !== current.name && store.getFarm(p.newfarmname)) {
            throw badRequest(`The farm ${p.newfarmname} already exists, try another name.`);
          }
          checkFarmRules(app, { ...current, ...definedOnly(changes) }, store.listBackends(current.id), network);
          return store.updateFarm(current.id, changes, generation);
        },
      );
      return {
        description: `Modify L4xNAT farm '${farm.name}'`,
        params: echo,
        message: `Some parameters have been changed in farm ${updated.name}.`,
      };
    },
  });

  zapiRoute<FarmRequest, Farm>(app, {
    method: 'DELETE',
    url: '/farms/:farmname',
    operationId: 'deleteFarm',
    summary: 'Delete a farm',
    tags: ['farms'],
    params: farmPathParams,
    description: (req) => `Delete farm ${req.params.farmname}`,
    before: (req) => requireFarm(app, req.params.farmname, `The farm ${req.params.farmname} doesn't exist, try another name.`),
    response: { 200: deleteEnvelope() },
    handler: async (_req, _reply, farm) => {
      store.write(() => store.deleteFarm(farm.id));
      return { description: `Delete farm ${farm.name}`, message: `The Farm ${farm.name} has been deleted.`, success: 'true' };
    },
  });

  zapiRoute<FarmRequest, Farm>(app, {
    method: 'DELETE',
    url: '/farms/:farmname/sessions',
    operationId: 'deleteFarmSessions',
    summary: 'Forget every persistence session of a farm (clients are balanced again on their next new flow)',
    tags: ['farms'],
    params: farmPathParams,
    description: (req) => `Delete sessions of farm ${req.params.farmname}`,
    before: (req) => farmInPath(app, req),
    response: { 200: deleteEnvelope({ sessions: { type: 'integer', description: 'How many sessions were deleted.' } }) },
    handler: async (_req, _reply, farm) => {
      const sessions = await app.deps.dataplane.flushSessions(farm.id);
      return { description: `Delete sessions of farm ${farm.name}`, message: `${sessions} sessions of the farm ${farm.name} have been deleted.`, sessions, success: 'true' };
    },
  });

  zapiRoute<FarmBodyRequest, Farm>(app, {
    method: 'PUT',
    url: '/farms/:farmname/actions',
    operationId: 'setFarmAction',
    summary: 'Start, stop or restart a farm',
    tags: ['farms'],
    params: farmPathParams,
    description: (req) => `Set a new action in ${req.params.farmname}`,
    body: { specs: actionSpecs, required: ['action'] },
    before: (req) => farmInPath(app, req),
    errorCodes: [409],
    response: {
      200: successEnvelope(
        {
          type: 'object',
          required: ['action', 'status'],
          properties: { action: { type: 'string' }, status: { $ref: 'FarmStatus#' } },
        },
        {},
        ['message'],
      ),
    },
    handler: async (req, _reply, farm) => {
      const { action } = parseParams(actionSpecs, req.body, ['action']);
      const running = action !== 'stop';
      // A restart is a write too: the reconciler re-renders the whole farm.
      const updated = !running
        ? store.write((generation) => store.updateFarm(farmInPath(app, req).id, { running }, generation))
        : await checkedWrite(
            app,
            () => {
              const current = farmInPath(app, req);
              return { vip: current.vip, ips: store.listBackends(current.id).map((b) => b.ip) };
            },
            (network, generation) => {
              const current = farmInPath(app, req);
              checkFarmRules(app, { ...current, running: true }, store.listBackends(current.id), network, startConflict);
              return store.updateFarm(current.id, { running }, generation);
            },
          );
      return {
        description: `Set a new action in ${farm.name}`,
        params: { action, status: describeFarm(app, updated).status },
        message: `The action ${action} has been performed in farm ${farm.name}.`,
      };
    },
  });
}
