import { StoreLimitError } from '../store/store.js';
import type { FastifyError, FastifyInstance, FastifyReply, FastifyRequest, RouteOptions } from 'fastify';
import { bodyProblem, bodySchema, messages, ParamError, type ParamSpecs } from './params.js';

export const ZAPI_PREFIX = '/zapi/v4.0/zapi.cgi';

/** A refused request: rendered as the ZAPI error envelope with this status. */
export class ZapiError extends Error {
  constructor(
    readonly statusCode: number,
    message: string,
    readonly params?: unknown,
    /** Overrides the route's description (an unknown route has none). */
    readonly description?: string,
    /** Every problem found, when a route reports them all at once (nftfarm's own routes). */
    readonly problems?: string[],
  ) {
    super(message);
  }
}

/** A 400 naming every problem: `message` joins them, `problems` lists them. */
export const badRequestAll = (problems: string[]): ZapiError => new ZapiError(400, problems.join(' '), undefined, undefined, problems);

export const notFound = (message: string): ZapiError => new ZapiError(404, message);
export const badRequest = (message: string): ZapiError => new ZapiError(400, message);
export const requestNotFound = (): ZapiError => new ZapiError(404, 'Request not found', undefined, 'Request not found');

/** What the error handler needs to know about the route that failed. */
interface ZapiRouteConfig {
  zapiDescription?: (request: FastifyRequest) => string;
  zapiParams?: ParamSpecs;
  zapiRequired?: readonly string[];
}

declare module 'fastify' {
  interface FastifyContextConfig extends ZapiRouteConfig {}
}

export interface ZapiRouteDef<Req extends FastifyRequest = FastifyRequest, Loaded = undefined> {
  method: 'GET' | 'POST' | 'PUT' | 'DELETE';
  url: string;
  /** The `description` of every answer of this route, errors included. */
  description: (request: Req) => string;
  summary: string;
  tags: string[];
  params?: Record<string, unknown>;
  querystring?: Record<string, unknown>;
  body?: { specs: ParamSpecs; required?: readonly string[] };
  /**
   * Checks that ZEVENET makes before looking at the body (the farm exists, the name is
   * free...): a 404 for a missing farm wins over a complaint about the body. What it
   * loads (the farm...) is handed to the handler.
   */
  before?: (request: Req) => Loaded;
  /**
   * A JSON body checked by the handler itself (which reports every problem), not by ParamSpecs:
   * the schema documents it in OpenAPI, and a schema failure is left for the handler to word.
   */
  jsonBody?: Record<string, unknown>;
  /** Response schemas by status code; the error envelope codes are added automatically. */
  response: Record<number, unknown>;
  errorCodes?: number[];
  /** Runs only with a body and path the schemas accepted. */
  handler: (request: Req, reply: FastifyReply, loaded: Loaded) => Promise<unknown>;
}

const ERROR_REF = { $ref: 'ZapiError#' };

/** Registers a ZAPI route: body schema from its parameter specs, error envelopes for the refusals. */
export function zapiRoute<Req extends FastifyRequest = FastifyRequest, Loaded = undefined>(app: FastifyInstance, def: ZapiRouteDef<Req, Loaded>): void {
  const errorCodes = new Set([...(def.errorCodes ?? []), ...(def.body || def.jsonBody ? [400, 415] : []), ...(def.params ? [404] : [])]);
  const response: Record<number, unknown> = { ...def.response, 401: { $ref: 'Unauthorized#' } };
  for (const code of errorCodes) response[code] = ERROR_REF;
  const config: ZapiRouteConfig = {
    zapiDescription: def.description as (r: FastifyRequest) => string,
    zapiParams: def.body?.specs,
    zapiRequired: def.body?.required,
  };
  const route: RouteOptions = {
    method: def.method,
    url: def.url,
    config,
    // The handler decides when a schema error is reported, so `before` can answer first.
    attachValidation: true,
    schema: {
      summary: def.summary,
      tags: def.tags,
      ...(def.params ? { params: def.params } : {}),
      ...(def.querystring ? { querystring: def.querystring } : {}),
      ...(def.body ? { body: bodySchema(def.body.specs, def.body.required) } : def.jsonBody ? { body: def.jsonBody } : {}),
      response,
    },
    handler: async (request: FastifyRequest, reply: FastifyReply) => {
      const failure = request.validationError as (FastifyError & { validationContext?: string }) | undefined;
      // ZEVENET's routes only match valid names and numeric ids: anything else is an unknown route.
      if (failure?.validationContext === 'params') throw requestNotFound();
      const loaded = def.before ? def.before(request as Req) : (undefined as Loaded);
      if (failure && !(def.jsonBody && failure.validationContext === 'body')) throw validationToZapi(request, failure);
      return def.handler(request as Req, reply, loaded);
    },
  };
  app.route(route);
}

function routeConfig(request: FastifyRequest): ZapiRouteConfig {
  return (request.routeOptions?.config ?? {}) as ZapiRouteConfig;
}

function describe(request: FastifyRequest): string {
  const fn = routeConfig(request).zapiDescription;
  if (!fn) return 'Request not found';
  try {
    return fn(request);
  } catch {
    return 'Request not found';
  }
}

/**
 * ajv refused the request. For bodies the message is found again by the parameter checks,
 * which know ZEVENET's order and texts; the schema and the checks state the same rules.
 */
function validationToZapi(request: FastifyRequest, failure: FastifyError & { validationContext?: string }): ZapiError {
  if (failure.validationContext === 'body') {
    const { zapiParams = {}, zapiRequired = [] } = routeConfig(request);
    const problem = bodyProblem(zapiParams, zapiRequired, request.body);
    if (problem) return new ZapiError(400, problem.message, problem.help);
  }
  if (failure.validationContext === 'querystring') {
    // Query strings are few and simple (backend-setup): say it the ZAPI way too.
    const error = failure.validation?.[0];
    const name = error?.instancePath.split('/')[1];
    const query = request.query as Record<string, unknown>;
    if (error?.keyword === 'additionalProperties') {
      const accepted = Object.keys((request.routeOptions.schema?.querystring as { properties?: object } | undefined)?.properties ?? {});
      return badRequest(messages.unknown([String(error.params.additionalProperty)], accepted));
    }
    if (name && error?.keyword === 'enum') return badRequest(messages.oneOf(name, error.params.allowedValues as string[]));
    if (name) return badRequest(messages.notValid(name, query[name]));
  }
  return badRequest(failure.message);
}

/** Turns every failure into a ZAPI error envelope; 5xx details stay in the log. */
export function zapiErrorHandler(error: FastifyError, request: FastifyRequest, reply: FastifyReply): FastifyReply {
  let zapi: ZapiError;
  const thrown: unknown = error;
  if (thrown instanceof ZapiError) zapi = thrown;
  else if (thrown instanceof ParamError) zapi = new ZapiError(400, thrown.message, thrown.help);
  // A real limit of the data plane's numbering: refused, nothing stored (the write rolled back).
  else if (thrown instanceof StoreLimitError) zapi = new ZapiError(409, thrown.message);
  else if (error.validation) zapi = validationToZapi(request, error as FastifyError & { validationContext?: string });
  else if (error.code === 'FST_ERR_CTP_INVALID_JSON_BODY' || (error instanceof SyntaxError && error.statusCode === 400)) {
    zapi = badRequest('The body does not look a valid JSON');
  } else if (error.code === 'FST_ERR_CTP_INVALID_MEDIA_TYPE') zapi = new ZapiError(415, 'Content-Type not supported');
  else if (error.code === 'FST_ERR_CTP_BODY_TOO_LARGE') zapi = new ZapiError(413, 'The body is too large');
  else if (error.statusCode && error.statusCode >= 400 && error.statusCode < 500) zapi = new ZapiError(error.statusCode, error.message);
  else {
    request.log.error({ err: error }, 'request failed');
    zapi = new ZapiError(500, 'An internal error happened; the nftfarm log has the details');
  }
  const body: Record<string, unknown> = { description: zapi.description ?? describe(request), error: 'true', message: zapi.message };
  if (zapi.params !== undefined) body.params = zapi.params;
  if (zapi.problems !== undefined) body.problems = zapi.problems;
  return reply.code(zapi.statusCode).send(body);
}
