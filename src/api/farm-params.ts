/** The ZAPI parameters of farm and backend calls: their schemas, normalizers and messages. */
import { isIPv4 } from 'node:net';
import { ALGORITHMS, NAT_TYPES, PERSISTENCE_MODES, PROTOCOLS } from '../model/farm.js';
import { PORT_PATTERN, VPORT_PATTERN } from '../model/ports.js';
import { enumParam, integerParam, messages, patternParam, type ParamSpec } from './params.js';

export const FARMNAME_PATTERN = '^[a-zA-Z0-9-]+$';

const farmnamePattern = patternParam(FARMNAME_PATTERN, { description: 'The farm name accepts alphabet letters, numbers or hypens (-).' });

/** `0` is reserved, as in ZEVENET. */
export const farmnameParam: ParamSpec<string> = {
  ...farmnamePattern,
  parse: (v) => (v === '0' ? undefined : farmnamePattern.parse(v)),
  invalidMessage: (name, value) =>
    value === '0' ? `The value '0' is a reserved word of the parameter '${name}'.` : messages.notValid(name, value),
};

/** Dotted-quad IPv4 without leading zeros (which some tools read as octal). */
export const IPV4_PATTERN = '^(?:(?:25[0-5]|2[0-4][0-9]|1[0-9]{2}|[1-9]?[0-9])\\.){3}(?:25[0-5]|2[0-4][0-9]|1[0-9]{2}|[1-9]?[0-9])$';
export const ipv4Param = patternParam(IPV4_PATTERN, { check: (v) => isIPv4(v), description: 'An IPv4 address.', format: 'ipv4' });

/** The grammar is in the schema; a range with low > high is refused by the route with ZEVENET's text. */
export const vportParam = patternParam(VPORT_PATTERN, {
  description: "A port, a comma list of ports and 'low:high' ranges, or '*' (every port, protocol 'all').",
});

export const protocolParam = enumParam(PROTOCOLS);

/** `snat` is an alias of `nat` (a deliberate difference from ZEVENET). */
export const nattypeParam: ParamSpec<(typeof NAT_TYPES)[number]> = {
  ...enumParam(NAT_TYPES, { snat: 'nat' }),
  description:
    "How packets reach the backends. 'nat' (default; alias 'snat'): conntrack DNAT plus source NAT, backends see the load balancer and need no route. " +
    "'dnat': conntrack DNAT only, backends see the client address and must route their replies through the load balancer. " +
    "'dsr': only MAC addresses are rewritten, backends hold the VIP on loopback and answer clients directly. " +
    "'stateless_dnat': addresses rewritten in netdev ingress without conntrack, replies must come back through the load balancer.",
};

/** `prio` passes the schema so the route can answer 410, as ZEVENET does. */
export const algorithmParam: ParamSpec<(typeof ALGORITHMS)[number] | 'prio'> = {
  ...enumParam(ALGORITHMS),
  schema: { type: 'string', enum: [...ALGORITHMS, 'prio'] },
  parse: (v) => (v === 'prio' || ALGORITHMS.includes(v as (typeof ALGORITHMS)[number]) ? (v as (typeof ALGORITHMS)[number] | 'prio') : undefined),
};

/** Stored as '' or srcip...; `none` and `ip` are accepted as ZEVENET spells them. */
export const persistenceParam = enumParam(PERSISTENCE_MODES, { none: '', ip: 'srcip' });

/** Persistence timeout in seconds. */
export const ttlParam = integerParam(1);

const PORT_REGEX = new RegExp(`^${PORT_PATTERN}$`);

/** One port, or empty for "the client's destination port". */
export const backendPortParam: ParamSpec<number | null> = {
  schema: {
    anyOf: [
      { type: 'integer', minimum: 1, maximum: 65535 },
      { type: 'string', pattern: `^(?:|${PORT_PATTERN})$` },
    ],
  },
  description: "A port 1-65535, or empty for the client's destination port.",
  allowBlank: true,
  parse: (v) => {
    if (v === '') return null;
    // The schema's grammar: no sign, no leading zeros.
    const n = typeof v === 'string' && PORT_REGEX.test(v) ? Number(v) : v;
    return typeof n === 'number' && Number.isInteger(n) && n >= 1 && n <= 65535 ? n : undefined;
  },
  invalidMessage: (name, value) => messages.notValid(name, value),
};

export const weightParam = integerParam(1, 9);
export const priorityParam = integerParam(1, 9);
export const maxConnsParam = integerParam(0);
