/** The ZAPI parameters of farm and backend calls: their schemas, normalizers and messages. */
import { isIPv4, isIPv6 } from 'node:net';
import { ALGORITHMS, NAT_TYPES, PERSISTENCE_MODES, PROTOCOLS } from '../model/farm.js';
import { PORT_PATTERN, VPORT_PATTERN } from '../model/ports.js';
import { MAX_CONNS_MAX, NAME_MAX_LENGTH, TTL_MAX_SECONDS } from '../model/limits.js';
import { notUnicastReason } from '../model/addresses.js';
import { canonicalIpv6 } from '../model/ip.js';
import { enumParam, integerParam, messages, patternParam, type ParamSpec } from './params.js';

export const FARMNAME_PATTERN = '^[a-zA-Z0-9-]+$';

const farmnamePattern = patternParam(FARMNAME_PATTERN, {
  description: `The farm name accepts alphabet letters, numbers or hypens (-), at most ${NAME_MAX_LENGTH} characters.`,
  maxLength: NAME_MAX_LENGTH,
});

/** `0` is reserved, as in ZEVENET. */
export const farmnameParam: ParamSpec<string> = {
  ...farmnamePattern,
  parse: (v) => (v === '0' ? undefined : farmnamePattern.parse(v)),
  invalidMessage: (name, value) =>
    value === '0' ? `The value '0' is a reserved word of the parameter '${name}'.` : farmnamePattern.invalidMessage(name, value),
};

/** Dotted-quad IPv4 without leading zeros (which some tools read as octal). */
export const IPV4_PATTERN = '^(?:(?:25[0-5]|2[0-4][0-9]|1[0-9]{2}|[1-9]?[0-9])\\.){3}(?:25[0-5]|2[0-4][0-9]|1[0-9]{2}|[1-9]?[0-9])$';
const ipv4Param = patternParam(IPV4_PATTERN, { check: (v) => isIPv4(v), description: 'An IPv4 address.', format: 'ipv4' });

/** Loose on purpose: the parser says precisely what is wrong with an IPv6 text (a zone, a mapped address...). */
const IPV6_SHAPE = '^[0-9A-Fa-f:.]*:[0-9A-Fa-f:.]*(%.*)?$';

/** An IPv4 address as given, an IPv6 address in its canonical form (RFC 5952), or undefined. */
function parseAddress(v: unknown): string | undefined {
  if (typeof v !== 'string' || v.length > 64) return undefined;
  const v4 = ipv4Param.parse(v);
  if (v4 !== undefined) return v4;
  return canonicalIpv6(v) ?? undefined;
}

/** Why a text that looks like IPv6 is not an address nftfarm takes, beyond "not valid". */
function ipv6TextProblem(v: unknown): string | null {
  if (typeof v !== 'string' || !v.includes('%')) return null;
  return isIPv6(v) || isIPv6(v.slice(0, v.indexOf('%')))
    ? `a zone ('%...') names an interface, which a VIP or backend cannot carry: link-local addresses (fe80::/10) are not accepted`
    : null;
}

/**
 * A unicast address a host can own, IPv4 or IPv6: no 0.0.0.0/8, loopback, multicast, reserved
 * or limited broadcast IPv4 address, no unspecified, loopback, multicast, link-local or
 * IPv4-mapped IPv6 address (the network and broadcast addresses of connected IPv4 networks
 * are refused by the farm rules, which know the networks). IPv6 is stored canonical.
 */
function unicastParam(role: 'backend' | 'VIP'): ParamSpec<string> {
  return {
    schema: {
      type: 'string',
      maxLength: 64,
      anyOf: [
        { pattern: IPV4_PATTERN, format: 'ipv4' },
        { pattern: IPV6_SHAPE, description: 'An IPv6 address (RFC 4291 text), answered in its canonical form (RFC 5952).' },
      ],
    },
    description:
      'A unicast IPv4 or IPv6 address, of the same family as the farm\'s other addresses. IPv4: not in 0.0.0.0/8, 127.0.0.0/8, 224.0.0.0/4 or 240.0.0.0/4, ' +
      'not 255.255.255.255, nor the network or broadcast address of a connected network. IPv6: not ::, ::1, multicast (ff00::/8), ' +
      'link-local (fe80::/10) or IPv4-mapped (::ffff:0:0/96); stored and answered in the canonical form (RFC 5952).',
    parse: (v) => {
      const ip = parseAddress(v);
      return ip !== undefined && notUnicastReason(ip) === null ? ip : undefined;
    },
    invalidMessage: (name, value) => {
      const ip = parseAddress(value);
      const why = ip === undefined ? ipv6TextProblem(value) : notUnicastReason(ip);
      return why ? `${messages.notValid(name, value).slice(0, -1)}: ${why}; a ${role} must be a unicast address.` : ipv4Param.invalidMessage(name, value);
    },
  };
}

export const vipParam = unicastParam('VIP');
export const backendIpParam = unicastParam('backend');

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

/** Persistence timeout in seconds, bounded by what nft accepts (see TTL_MAX_SECONDS). */
export const ttlParam = integerParam(1, TTL_MAX_SECONDS);

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
export const maxConnsParam = integerParam(0, MAX_CONNS_MAX);
