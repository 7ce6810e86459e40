/**
 * ZAPI body parameters. Each one is a JSON Schema (checked by Fastify's ajv and published in
 * the OpenAPI document), a parser that normalizes what the schema let through (numeric
 * strings become numbers; ranges the schema cannot express are checked) and the ZAPI message
 * for a refused value. Route bodies are built from these, so the schema, the empty-body help
 * answer and the error messages cannot disagree.
 */

export interface ParamSpec<T> {
  schema: Record<string, unknown>;
  /** Shown in the empty-body help answer and in "expects one of" messages. */
  possibleValues?: readonly string[];
  /** Help text: what the value looks like. */
  description?: string;
  /** Help text for numbers, e.g. "Expects a value between '1' and '9'." */
  interval?: string;
  /** "" is a meaningful value (e.g. no persistence, the client's port). */
  allowBlank?: boolean;
  /** Returns undefined for a value the parameter refuses. */
  parse(value: unknown): T | undefined;
  invalidMessage(name: string, value: unknown): string;
}

export type ParamSpecs = Record<string, ParamSpec<unknown>>;

export type ParsedParams<S extends ParamSpecs> = { [K in keyof S]?: S[K] extends ParamSpec<infer T> ? T : never };

/** A refused body: the HTTP layer turns it into a 400 ZAPI error envelope. */
export class ParamError extends Error {
  constructor(
    message: string,
    readonly help?: Record<string, unknown>[],
  ) {
    super(message);
  }
}

/** A value quoted in a message: long ones are cut, so a refusal never echoes a huge body back. */
const show = (value: unknown): string => {
  const text = typeof value === 'string' || typeof value === 'number' ? String(value) : JSON.stringify(value);
  return text.length > SHOWN_MAX ? `${text.slice(0, SHOWN_MAX)}...` : text;
};
const SHOWN_MAX = 80;

/** ZEVENET's list style: 'a', 'b' and 'c'. */
const quotedList = (names: readonly string[]): string => {
  const quoted = names.map((n) => `'${n}'`);
  return quoted.length <= 1 ? quoted.join('') : `${quoted.slice(0, -1).join(', ')} and ${quoted[quoted.length - 1]}`;
};

export const messages = {
  noParams: 'No parameter has been sent. Please, try with:',
  unknown: (names: readonly string[], accepted: readonly string[]) =>
    `${names.length === 1 ? `The parameter ${quotedList(names)} is` : `The parameters ${quotedList(names)} are`} not correct for this call. ` +
    `Please, try with: '${accepted.join("', '")}'`,
  missing: (names: readonly string[]) =>
    names.length === 1 ? `The required parameter ${quotedList(names)} is missing.` : `The required parameters ${quotedList(names)} are missing.`,
  blank: (name: string) => `The parameter '${name}' can't be in blank.`,
  notScalar: (name: string, value: unknown) => `The parameter '${name}' does not expect a ${Array.isArray(value) ? 'ARRAY' : 'HASH'} as input`,
  oneOf: (name: string, values: readonly string[]) =>
    `The parameter '${name}' expects one of the following values: '${values.join("', '")}'`,
  notValid: (name: string, value: unknown) => `The value '${show(value)}' is not valid for the parameter '${name}'.`,
  integerBetween: (name: string, min: number, max: number) => `'${name}' has to be an integer number between '${min}' and '${max}'`,
  integerAtLeast: (name: string, min: number) => `'${name}' has to be an integer number greater than or equal to '${min}'`,
  tooLong: (name: string, max: number, length: number) => `The parameter '${name}' accepts at most ${max} characters (this one has ${length}).`,
};

/** One of a fixed list of strings. `aliases` are accepted and stored as their target. */
export function enumParam<V extends string>(values: readonly V[], aliases: Record<string, V> = {}): ParamSpec<V> {
  const accepted = [...values, ...Object.keys(aliases)];
  return {
    schema: { type: 'string', enum: accepted },
    possibleValues: accepted,
    allowBlank: accepted.includes(''),
    parse: (v) => (Object.hasOwn(aliases, v as string) ? aliases[v as string] : values.includes(v as V) ? (v as V) : undefined),
    invalidMessage: (name) => messages.oneOf(name, accepted),
  };
}

/**
 * An integer in [min, max], given as a JSON number or a numeric string (ZEVENET compares as
 * strings). `max` undefined: no upper bound worth stating (capped at 2^31-1).
 */
export function integerParam(min: number, max?: number): ParamSpec<number> {
  const upper = max ?? 2_147_483_647;
  return {
    schema: {
      anyOf: [
        { type: 'integer', minimum: min, maximum: upper },
        { type: 'string', pattern: '^[0-9]{1,10}$' },
      ],
    },
    interval: `Expects a value between '${min}' and '${max ?? '-'}'.`,
    parse: (v) => {
      // The schema's pattern: Number() alone would also take ' 5', '5e0' and '0x5'.
      const n = typeof v === 'string' ? (/^[0-9]{1,10}$/.test(v) ? Number(v) : NaN) : (v as number);
      return Number.isInteger(n) && n >= min && n <= upper ? n : undefined;
    },
    invalidMessage: (name) => (max === undefined ? messages.integerAtLeast(name, min) : messages.integerBetween(name, min, max)),
  };
}

/** A string matching `pattern` of at most `maxLength` characters, optionally refined by `check`. */
export function patternParam(
  pattern: string,
  options: { check?: (v: string) => boolean; description?: string; allowBlank?: boolean; format?: string; maxLength?: number } = {},
): ParamSpec<string> {
  const regex = new RegExp(pattern);
  const check = options.check ?? (() => true);
  const { maxLength } = options;
  const tooLong = (v: unknown): v is string => maxLength !== undefined && typeof v === 'string' && v.length > maxLength;
  return {
    schema: { type: 'string', pattern, ...(maxLength !== undefined ? { maxLength } : {}), ...(options.format ? { format: options.format } : {}) },
    description: options.description,
    allowBlank: options.allowBlank,
    parse: (v) => (typeof v === 'string' && !tooLong(v) && regex.test(v) && check(v) ? v : undefined),
    invalidMessage: (name, value) => (tooLong(value) ? messages.tooLong(name, maxLength as number, value.length) : messages.notValid(name, value)),
  };
}

/** The strings "true"/"false" ZAPI uses for booleans (JSON booleans are accepted too). */
export function booleanParam(): ParamSpec<boolean> {
  return {
    schema: { anyOf: [{ type: 'string', enum: ['true', 'false'] }, { type: 'boolean' }] },
    possibleValues: ['true', 'false'],
    parse: (v) => (v === true || v === 'true' ? true : v === false || v === 'false' ? false : undefined),
    invalidMessage: (name) => messages.oneOf(name, ['true', 'false']),
  };
}

/** A JSON body schema for a set of parameters, rejecting unknown ones and empty bodies. */
export function bodySchema(specs: ParamSpecs, required: readonly string[] = []): Record<string, unknown> {
  return {
    type: 'object',
    minProperties: 1,
    additionalProperties: false,
    properties: Object.fromEntries(Object.entries(specs).map(([name, spec]) => [name, spec.description ? { ...spec.schema, description: spec.description } : spec.schema])),
    ...(required.length > 0 ? { required: [...required] } : {}),
  };
}

/** The `params` list of the empty-body help answer. */
export function helpParams(specs: ParamSpecs, required: readonly string[] = []): Record<string, unknown>[] {
  return Object.entries(specs).map(([name, spec]) => {
    const options = [...(spec.allowBlank ? [] : ['non_blank']), ...(required.includes(name) ? ['required'] : [])];
    return {
      name,
      ...(spec.description ? { description: spec.description } : {}),
      ...(spec.interval ? { interval: spec.interval } : {}),
      ...(options.length > 0 ? { options } : {}),
      ...(spec.possibleValues ? { possible_values: [...spec.possibleValues] } : {}),
    };
  });
}

const isBlank = (v: unknown): boolean => v === '' || v === null || (Array.isArray(v) && v.length === 0);

/**
 * The first problem with a body, in ZEVENET's order of checks: nothing sent, required
 * parameters missing, unknown parameters, then each value in catalog order.
 */
export function bodyProblem(specs: ParamSpecs, required: readonly string[], body: unknown): ParamError | null {
  if (body === null || body === undefined || typeof body !== 'object' || Array.isArray(body) || Object.keys(body).length === 0) {
    return new ParamError(messages.noParams, helpParams(specs, required));
  }
  const given = body as Record<string, unknown>;
  const missing = required.filter((name) => !(name in given));
  if (missing.length > 0) return new ParamError(messages.missing(missing));
  const unknown = Object.keys(given).filter((name) => !Object.hasOwn(specs, name));
  if (unknown.length > 0) return new ParamError(messages.unknown(unknown, Object.keys(specs)));
  for (const [name, spec] of Object.entries(specs)) {
    if (!(name in given)) continue;
    const value = given[name];
    if (isBlank(value) && !spec.allowBlank) return new ParamError(messages.blank(name));
    if (value !== null && typeof value === 'object') return new ParamError(messages.notScalar(name, value));
    if (spec.parse(value) === undefined) return new ParamError(spec.invalidMessage(name, value));
  }
  return null;
}

/** The fields a request set: a parsed change without the ones it left out. */
export function definedOnly<T extends object>(obj: T): Partial<T> {
  return Object.fromEntries(Object.entries(obj).filter(([, v]) => v !== undefined)) as Partial<T>;
}

/** Parses a body, or throws the ParamError of its first problem. */
export function parseParams<S extends ParamSpecs>(specs: S, body: unknown, required: readonly string[] = []): ParsedParams<S> {
  const problem = bodyProblem(specs, required, body);
  if (problem) throw problem;
  const given = body as Record<string, unknown>;
  const out: Record<string, unknown> = {};
  for (const [name, spec] of Object.entries(specs)) {
    if (name in given) out[name] = spec.parse(given[name]);
  }
  return out as ParsedParams<S>;
}
