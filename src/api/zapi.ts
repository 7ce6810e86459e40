import { StoreLimitError } from '../store/store.js';
import type { FastifyError, FastifyInstance, FastifyReply, FastifyRequest, RouteOptions } from 'fastify';
import { NAME_MAX_LENGTH } from '../model/limits.js';
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
  /** Stable and unique: generated clients name their methods after it. */
  operationId: string;
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

/** What each refusal means, for the OpenAPI document (the envelope's `message` says the details). */
const ERROR_ANSWERS: Record<number | 'default', string> = {
  400:
    'Refused: a parameter is missing, unknown, blank, of the wrong type or out of its range, or a rule of the farm forbids the change. ' +
    '`message` says which; with no parameter sent, `params` lists the accepted ones.',
  404: 'The farm, backend or health check does not exist, or no route matches.',
  409: 'The farm kept changing while the request was checked: send it again.',
  410: "The 'prio' algorithm is not supported anymore.",
  413: 'The body is larger than 1 MiB.',
  414: `A path parameter is longer than ${NAME_MAX_LENGTH} characters.`,
  415: 'The body is not JSON: send Content-Type application/json.',
  default:
    'Any other refusal, in the same envelope: 400 a malformed URL (percent-encoding), an unknown HTTP method or broken framing; ' +
    '408 the request did not arrive whole within 30 s; 431 the request line and headers exceed 16 KiB; 503 nftfarm is shutting down.',
};

const errorAnswer = (code: number | 'default') => ({ $ref: 'ZapiError#', description: ERROR_ANSWERS[code as 400] ?? 'Refused; `message` says why.' });

/** Registers a ZAPI route: body schema from its parameter specs, error envelopes for the refusals. */
export function zapiRoute<Req extends FastifyRequest = FastifyRequest, Loaded = undefined>(app: FastifyInstance, def: ZapiRouteDef<Req, Loaded>): void {
  const errorCodes = new Set([...(def.errorCodes ?? []), ...(def.body || def.jsonBody ? [400, 413, 415] : []), ...(def.params ? [404, 414] : [])]);
  const response: Record<number | string, unknown> = {
    ...def.response,
    401: { $ref: 'Unauthorized#', description: "The API key is missing or wrong (ZEVENET's body, not the envelope)." },
  };
  for (const code of [...errorCodes].sort()) response[code] = errorAnswer(code);
  response.default = errorAnswer('default');
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
      operationId: def.operationId,
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

/**
 * The most characters a path parameter may have: farm and health check names are at most
 * this long (NAME_MAX_LENGTH), so every name the API creates can be routed to; a longer
 * one answers 414 in the envelope (the router refuses it before any route runs).
 */
export const MAX_PARAM_LENGTH = NAME_MAX_LENGTH;

/** The limit of the request line plus headers (Node's default --max-http-header-size). */
export const MAX_HEADER_BYTES = 16 * 1024;

/** What a request that no route saw is refused for: the router, Node's HTTP parser, shutdown. */
export type TransportErrorKind = 'bad-url' | 'param-too-long' | 'bad-method' | 'headers-too-large' | 'timeout' | 'bad-http' | 'closing';

const TRANSPORT_ERRORS: Record<TransportErrorKind, { status: number; description: string; message: string }> = {
  'bad-url': {
    status: 400,
    description: 'Bad request',
    message: 'The URL is not valid: it holds a malformed percent-encoding (a % must be followed by two hexadecimal digits of UTF-8).',
  },
  'param-too-long': {
    status: 414,
    description: 'URI too long',
    message: `A path parameter is longer than ${MAX_PARAM_LENGTH} characters: farm and health check names have at most ${MAX_PARAM_LENGTH}.`,
  },
  'bad-method': {
    status: 400,
    description: 'Bad request',
    message: 'The HTTP method is not supported: ZAPI calls use GET, POST, PUT and DELETE.',
  },
  'headers-too-large': {
    status: 431,
    description: 'Request header fields too large',
    message: `The request line and headers are too large: together they must fit in ${MAX_HEADER_BYTES} bytes.`,
  },
  timeout: { status: 408, description: 'Request timeout', message: 'The request was not received in time: send the whole request at once.' },
  'bad-http': { status: 400, description: 'Bad request', message: 'The request is not valid HTTP/1.1.' },
  closing: { status: 503, description: 'Service unavailable', message: 'nftfarm is shutting down; retry in a moment.' },
};

export function transportError(kind: TransportErrorKind, detail?: string): ZapiError {
  const e = TRANSPORT_ERRORS[kind];
  return new ZapiError(e.status, detail ? `${e.message} ${detail}` : e.message, undefined, e.description);
}

/** Node's HTTP parser and server errors (the 'clientError' event), as transport error kinds. */
export function clientErrorKind(code: string | undefined): TransportErrorKind {
  if (code === 'HPE_HEADER_OVERFLOW') return 'headers-too-large';
  if (code === 'ERR_HTTP_REQUEST_TIMEOUT' || code === 'ERR_HTTP_HEADERS_TIMEOUT') return 'timeout';
  if (code === 'HPE_INVALID_METHOD') return 'bad-method';
  return 'bad-http';
}

/** Fastify's router errors (the `frameworkErrors` option), as transport errors. */
export function frameworkError(error: FastifyError): ZapiError {
  if (error.code === 'FST_ERR_BAD_URL') return transportError('bad-url');
  if (error.code === 'FST_ERR_MAX_PARAM_LENGTH') return transportError('param-too-long');
  return new ZapiError(500, 'An internal error happened; the nftfarm log has the details', undefined, 'Internal error');
}

/** The envelope of a refusal, as a complete HTTP/1.1 response (for a socket no reply object owns). */
export function rawErrorResponse(zapi: ZapiError): string {
  const body = JSON.stringify(errorBody(zapi, zapi.description ?? 'Bad request'));
  return (
    `HTTP/1.1 ${zapi.statusCode} ${zapi.description ?? 'Error'}\r\nContent-Type: application/json; charset=utf-8\r\n` +
    `Content-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`
  );
}

function errorBody(zapi: ZapiError, description: string): Record<string, unknown> {
  const body: Record<string, unknown> = { description: zapi.description ?? description, error: 'true', message: zapi.message };
  if (zapi.params !== undefined) body.params = zapi.params;
  if (zapi.problems !== undefined) body.problems = zapi.problems;
  return body;
}

/** Answers a refusal in the envelope (for hooks and the router, which have no route description). */
export function sendZapiError(reply: FastifyReply, zapi: ZapiError): FastifyReply {
  return reply.code(zapi.statusCode).send(errorBody(zapi, zapi.description ?? 'Request not found'));
}

/** Valid JSON that the body parser refuses: keys that could poison object prototypes. */
export const forbiddenKeys = (): ZapiError => badRequest("The body must not contain the keys '__proto__' or 'constructor.prototype'.");

/** The body parser's and Fastify's own request errors, as ZAPI refusals. */
function requestError(error: FastifyError): ZapiError | null {
  if (error.code === 'FST_ERR_CTP_INVALID_JSON_BODY' || (error instanceof SyntaxError && error.statusCode === 400)) {
    return badRequest('The body does not look a valid JSON');
  }
  if (error.code === 'FST_ERR_CTP_INVALID_MEDIA_TYPE') return new ZapiError(415, 'Content-Type not supported');
  if (error.code === 'FST_ERR_CTP_BODY_TOO_LARGE') return new ZapiError(413, 'The body is too large');
  if (error.code === 'FST_ERR_CTP_INVALID_CONTENT_LENGTH') return badRequest('The body is not as long as its Content-Length header says.');
  if (error.statusCode && error.statusCode >= 400 && error.statusCode < 500) return new ZapiError(error.statusCode, error.message);
  return null;
}

/** Turns every failure into a ZAPI error envelope; 5xx details stay in the log. */
export function zapiErrorHandler(error: FastifyError, request: FastifyRequest, reply: FastifyReply): FastifyReply {
  const thrown: unknown = error;
  let zapi: ZapiError | null;
  if (thrown instanceof ZapiError) zapi = thrown;
  else if (thrown instanceof ParamError) zapi = new ZapiError(400, thrown.message, thrown.help);
  // A real limit of the data plane's numbering: refused, nothing stored (the write rolled back).
  else if (thrown instanceof StoreLimitError) zapi = new ZapiError(409, thrown.message);
  else if (error.validation) zapi = validationToZapi(request, error as FastifyError & { validationContext?: string });
  else zapi = requestError(error);
  if (!zapi) {
    request.log.error({ err: error }, 'request failed');
    zapi = new ZapiError(500, 'An internal error happened; the nftfarm log has the details');
  }
  return reply.code(zapi.statusCode).send(errorBody(zapi, describe(request)));
}
