import type { FastifyInstance, FastifyRequest } from 'fastify';
import type { Farm, HealthCheck } from '../../model/farm.js';
import type { HealthCheckFields } from '../../store/store.js';
import { booleanParam, definedOnly, integerParam, parseParams, patternParam, type ParamSpec } from '../params.js';
import { badRequest, notFound, zapiRoute } from '../zapi.js';
import { deleteEnvelope, successEnvelope } from '../schemas.js';
import { describeFarm, farmPathParams, requireFarm } from '../farm-service.js';
import { commandProblemMessage, parseCheckCommand } from '../../health/command.js';
import { CHECK_COMMAND_MAX_LENGTH, CHECK_DESCRIPTION_MAX_LENGTH, NAME_MAX_LENGTH } from '../../model/limits.js';

type CheckRequest = FastifyRequest<{ Params: { name: string }; Body: Record<string, unknown> }>;
type FarmRequest = FastifyRequest<{ Params: { farmname: string }; Body: Record<string, unknown> }>;
type FarmCheckRequest = FastifyRequest<{ Params: { farmname: string; name: string } }>;

export const CHECK_NAME_PATTERN = '^[a-zA-Z0-9_-]+$';

const checkNamePattern = patternParam(CHECK_NAME_PATTERN, {
  description: `Letters, numbers, _ and -, at most ${NAME_MAX_LENGTH} characters.`,
  maxLength: NAME_MAX_LENGTH,
});
/** `0` is reserved, as in ZEVENET. */
const checkNameParam: ParamSpec<string> = { ...checkNamePattern, parse: (v) => (v === '0' ? undefined : checkNamePattern.parse(v)) };

/** One printable line: it becomes the checker's command line. */
const oneLine = (description: string, maxLength: number) => patternParam('^[^\\n\\r\\x00]+$', { check: (v) => v.trim().length > 0, description, maxLength });

const commandLine = oneLine('The check command; HOST and PORT are replaced for each backend.', CHECK_COMMAND_MAX_LENGTH);
/**
 * A command is parsed into a native checker when it is stored: anything else (another
 * program, shell syntax, unknown options) is refused with what is wrong.
 */
const commandParam: ParamSpec<string> = {
  ...commandLine,
  description:
    'The check command, one of check_tcp, check_http, check_udp, check_ping with their options; HOST and PORT are replaced for each backend. Checks run inside nftfarm: no shell command is ever run. ' +
    `At most ${CHECK_COMMAND_MAX_LENGTH} characters.`,
  parse: (v) => {
    const line = commandLine.parse(v);
    return line !== undefined && parseCheckCommand(line).ok ? line : undefined;
  },
  invalidMessage: (name, value) => {
    if (typeof value !== 'string' || commandLine.parse(value) === undefined) return commandLine.invalidMessage(name, value);
    const parsed = parseCheckCommand(value);
    return parsed.ok ? commandLine.invalidMessage(name, value) : commandProblemMessage(value, parsed.problem);
  },
};

const fieldSpecs = {
  description: oneLine(`What the check does, at most ${CHECK_DESCRIPTION_MAX_LENGTH} characters.`, CHECK_DESCRIPTION_MAX_LENGTH),
  command: commandParam,
  interval: integerParam(1, 86400),
  timeout: integerParam(1, 86400),
  fall: integerParam(1, 100),
  rise: integerParam(1, 100),
  cut_conns: booleanParam(),
  log: booleanParam(),
  backend_alias: booleanParam(),
};

const createSpecs = { name: checkNameParam, copy_from: checkNameParam, ...fieldSpecs };
const modifySpecs = { ...fieldSpecs, force: booleanParam() };
const linkSpecs = { name: checkNameParam };

const checkPathParams = {
  type: 'object',
  required: ['name'],
  properties: { name: { type: 'string', pattern: CHECK_NAME_PATTERN, maxLength: NAME_MAX_LENGTH } },
} as const;

const farmCheckPathParams = {
  type: 'object',
  required: ['farmname', 'name'],
  properties: { ...farmPathParams.properties, name: { type: 'string', pattern: CHECK_NAME_PATTERN, maxLength: NAME_MAX_LENGTH } },
} as const;

const bool = (v: boolean): 'true' | 'false' => (v ? 'true' : 'false');

function checkView(check: HealthCheck, farms: string[]) {
  return {
    name: check.name,
    description: check.description,
    command: check.command,
    farms,
    log: bool(check.log),
    interval: check.interval,
    timeout: check.timeout,
    fall: check.fall,
    rise: check.rise,
    cut_conns: bool(check.cutConns),
    template: bool(check.template),
    backend_alias: bool(check.backendAlias),
  };
}

type FieldParams = { [K in keyof typeof fieldSpecs]?: (typeof fieldSpecs)[K] extends ParamSpec<infer T> ? T : never };

function fieldsFrom(p: FieldParams): Partial<HealthCheckFields> {
  const fields: Partial<HealthCheckFields> = {
    description: p.description,
    command: p.command,
    interval: p.interval,
    timeout: p.timeout,
    fall: p.fall,
    rise: p.rise,
    cutConns: p.cut_conns,
    log: p.log,
    backendAlias: p.backend_alias,
  };
  return definedOnly(fields);
}

/** The checker must finish before its next run. */
function timingProblem(c: Pick<HealthCheck, 'interval' | 'timeout'>): string | null {
  return c.timeout > c.interval ? `The timeout (${c.timeout} s) cannot be greater than the interval (${c.interval} s).` : null;
}

const farmLabel = (farm: string): string => `'farm '${farm}''`;

export async function healthCheckRoutes(app: FastifyInstance): Promise<void> {
  const { store } = app.deps;

  const requireCheck = (name: string, message: string): HealthCheck => {
    const check = store.getHealthCheck(name);
    if (!check) throw notFound(message);
    return check;
  };

  zapiRoute(app, {
    method: 'GET',
    url: '/monitoring/fg',
    operationId: 'listHealthChecks',
    summary: 'List the health checks and templates',
    tags: ['farmguardian'],
    description: () => 'List farm guardian checks and templates',
    response: { 200: successEnvelope({ type: 'array', items: { $ref: 'HealthCheck#' } }) },
    handler: async () => ({
      description: 'List farm guardian checks and templates',
      params: store.listHealthChecks().map((c) => checkView(c, store.farmsUsingCheck(c.name))),
    }),
  });

  zapiRoute<CheckRequest, HealthCheck>(app, {
    method: 'GET',
    url: '/monitoring/fg/:name',
    operationId: 'getHealthCheck',
    summary: 'Show a health check',
    tags: ['farmguardian'],
    params: checkPathParams,
    description: (req) => `Retrive the farm guardian '${req.params.name}'`,
    before: (req) => requireCheck(req.params.name, `The farm guardian '${req.params.name}' has not been found.`),
    response: { 200: successEnvelope({ $ref: 'HealthCheck#' }) },
    handler: async (_req, _reply, check) => {
      return { description: `Retrive the farm guardian '${check.name}'`, params: checkView(check, store.farmsUsingCheck(check.name)) };
    },
  });

  zapiRoute<CheckRequest>(app, {
    method: 'POST',
    url: '/monitoring/fg',
    operationId: 'createHealthCheck',
    summary: 'Create a health check, from scratch or as a copy (copy_from)',
    tags: ['farmguardian'],
    description: (req) => `Create a farm guardian '${String(req.body?.name ?? '')}'`,
    body: { specs: createSpecs, required: ['name'] },
    before: (req) => {
      const name = req.body?.name;
      if (typeof name === 'string' && store.getHealthCheck(name)) throw badRequest(`The farm guardian '${name}' already exists.`);
    },
    response: { 200: successEnvelope({ $ref: 'HealthCheck#' }, {}, ['message']) },
    handler: async (req) => {
      const p = parseParams(createSpecs, req.body, ['name']);
      const name = p.name as string;
      const created = store.write(() => {
        if (store.getHealthCheck(name)) throw badRequest(`The farm guardian '${name}' already exists.`);
        let base: HealthCheckFields | undefined;
        if (p.copy_from !== undefined) {
          const source = store.getHealthCheck(p.copy_from);
          if (!source) throw badRequest(`The parent farm guardian '${p.copy_from}' does not exist.`);
          const { name: _name, template: _template, ...fields } = source;
          base = fields;
        }
        const fields: HealthCheckFields = {
          description: '',
          command: '',
          interval: 10,
          timeout: 10,
          fall: 1,
          rise: 1,
          cutConns: false,
          log: false,
          backendAlias: false,
          ...base,
          ...fieldsFrom(p),
        };
        if (!fields.command) throw badRequest("The required parameter 'command' is missing.");
        const timing = timingProblem(fields);
        if (timing) throw badRequest(timing);
        return store.insertHealthCheck(name, fields);
      });
      return {
        description: `Create a farm guardian '${name}'`,
        params: checkView(created, []),
        message: `The farm guardian '${name}' has been created successfully.`,
      };
    },
  });

  zapiRoute<CheckRequest, HealthCheck>(app, {
    method: 'PUT',
    url: '/monitoring/fg/:name',
    operationId: 'modifyHealthCheck',
    summary: 'Modify a health check (templates: only log, interval, timeout, fall, rise, cut_conns, backend_alias)',
    tags: ['farmguardian'],
    params: checkPathParams,
    description: (req) => `Modify farm guardian '${req.params.name}'`,
    body: { specs: modifySpecs },
    before: (req) => requireCheck(req.params.name, `The farm guardian '${req.params.name}' does not exist.`),
    response: { 200: successEnvelope({ $ref: 'HealthCheck#' }, {}, ['message']) },
    handler: async (req, _reply, check) => {
      const p = parseParams(modifySpecs, req.body);
      const changes = fieldsFrom(p);
      if (check.template && (changes.description !== undefined || changes.command !== undefined)) {
        throw badRequest("It is not allow to modify the parameters 'description' or 'command' in a template.");
      }
      const updated = store.write((generation) => {
        const farms = store.farmsUsingCheck(check.name);
        // Changing what runs under live farms is deliberate: ZEVENET asks for 'force'.
        if (farms.length > 0 && !p.force && (changes.command !== undefined || changes.backendAlias !== undefined)) {
          throw badRequest(`Farm guardian '${check.name}' is running in: '${farms.join(', ')}'. To apply, send parameter 'force'`);
        }
        // As in ZEVENET, where the timeout defaults to the interval: a shorter interval alone
        // shortens the timeout with it; only an explicit contradiction is refused.
        if (changes.interval !== undefined && changes.timeout === undefined && check.timeout > changes.interval) {
          changes.timeout = changes.interval;
        }
        const timing = timingProblem({ interval: changes.interval ?? check.interval, timeout: changes.timeout ?? check.timeout });
        if (timing) throw badRequest(timing);
        return store.updateHealthCheck(check.name, changes, generation);
      });
      return {
        description: `Modify farm guardian '${check.name}'`,
        params: checkView(updated, store.farmsUsingCheck(updated.name)),
        message: `Success, some parameters have been changed in farm guardian '${updated.name}'.`,
      };
    },
  });

  zapiRoute<CheckRequest, HealthCheck>(app, {
    method: 'DELETE',
    url: '/monitoring/fg/:name',
    operationId: 'deleteHealthCheck',
    summary: 'Delete a health check that no farm uses',
    tags: ['farmguardian'],
    params: checkPathParams,
    description: (req) => `Delete the farm guardian '${req.params.name}'`,
    before: (req) => requireCheck(req.params.name, `The farm guardian ${req.params.name} does not exist`),
    response: { 200: deleteEnvelope() },
    handler: async (_req, _reply, check) => {
      store.write(() => {
        const farms = store.farmsUsingCheck(check.name);
        if (farms.length > 0) {
          throw badRequest(`It is not possible delete farm guardian '${check.name}' because it is running in: '${farms.join(', ')}'`);
        }
        if (check.template) throw badRequest(`The farm guardian '${check.name}' is a built-in template and cannot be deleted.`);
        store.deleteHealthCheck(check.name);
      });
      return { description: `Delete the farm guardian '${check.name}'`, message: `${check.name} has been deleted successfully.`, success: 'true' };
    },
  });

  zapiRoute<FarmRequest, Farm>(app, {
    method: 'POST',
    url: '/farms/:farmname/fg',
    operationId: 'linkFarmHealthCheck',
    summary: 'Link a health check to a farm (one per farm)',
    tags: ['farmguardian'],
    params: farmPathParams,
    description: (req) => `Add the farm guardian '${String(req.body?.name ?? '')}' to the ${farmLabel(req.params.farmname)}`,
    body: { specs: linkSpecs, required: ['name'] },
    before: (req) => requireFarm(app, req.params.farmname, `The farm '${req.params.farmname}' does not exist`),
    response: {
      200: {
        type: 'object',
        required: ['description', 'message', 'status'],
        properties: { description: { type: 'string' }, message: { type: 'string' }, status: { $ref: 'FarmStatus#' } },
      },
    },
    handler: async (req, _reply, farm) => {
      const { name } = parseParams(linkSpecs, req.body, ['name']) as { name: string };
      requireCheck(name, `The farmguardian '${name}' does not exist`);
      store.write((generation) => {
        const linked = store.farmCheckName(farm.id);
        if (linked === name) throw badRequest(`'${name}' is already applied in the ${farmLabel(farm.name)}`);
        if (linked !== null) throw badRequest(`The ${farmLabel(farm.name)} has already linked a farm guardian`);
        store.linkHealthCheck(farm.id, name, generation);
      });
      return {
        description: `Add the farm guardian '${name}' to the ${farmLabel(farm.name)}`,
        message: `Success, The farm guardian '${name}' was added to the ${farmLabel(farm.name)}`,
        status: describeFarm(app, farm).status,
      };
    },
  });

  zapiRoute<FarmCheckRequest, Farm>(app, {
    method: 'DELETE',
    url: '/farms/:farmname/fg/:name',
    operationId: 'unlinkFarmHealthCheck',
    summary: 'Unlink the health check of a farm',
    tags: ['farmguardian'],
    params: farmCheckPathParams,
    description: (req) => `Remove the farm guardian '${req.params.name}' from the ${farmLabel(req.params.farmname)}`,
    before: (req) => {
      const farm = requireFarm(app, req.params.farmname, `The farm '${req.params.farmname}' does not exist`);
      requireCheck(req.params.name, `The farmguardian '${req.params.name}' does not exist`);
      return farm;
    },
    response: { 200: deleteEnvelope(farmStatusProp()) },
    handler: async (req, _reply, farm) => {
      const { name } = req.params;
      store.write((generation) => {
        if (store.farmCheckName(farm.id) !== name) throw badRequest(`The farm guardian '${name}' is not applied to the ${farmLabel(farm.name)}`);
        store.unlinkHealthCheck(farm.id, generation);
      });
      return {
        description: `Remove the farm guardian '${name}' from the ${farmLabel(farm.name)}`,
        message: `Success, '${name}' was removed from the ${farmLabel(farm.name)}`,
        status: describeFarm(app, farm).status,
        success: 'true',
      };
    },
  });
}

function farmStatusProp() {
  return { status: { $ref: 'FarmStatus#' } };
}
