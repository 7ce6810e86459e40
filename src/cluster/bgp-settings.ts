/**
 * BGP settings: the model, their JSON form (GET/PUT /system/bgp, the configuration document)
 * and the validation of a change. Pure: no I/O.
 */
import { isIPv4 } from 'node:net';

export interface BgpNeighbor {
  address: string;
  asn: number;
}

export const SPEAKERS = ['bird', 'external'] as const;
export type Speaker = (typeof SPEAKERS)[number];

export interface BgpSettings {
  enabled: boolean;
  /** 'bird': nftfarm runs BIRD; 'external': another daemon reads the VIP routes of table 222. */
  speaker: Speaker;
  /** This node's AS; null until set (BGP cannot be enabled without it). */
  asn: number | null;
  /** Node-specific (not exported); null: the node's own address toward its first neighbour. */
  routerId: string | null;
  /** Seconds; 0 (no keepalives) or 3-65535. Keepalives are sent every third of it. */
  holdTime: number;
  neighbors: BgpNeighbor[];
  /** Seconds nftfarm keeps forwarding after withdrawing its VIPs on SIGTERM. */
  drainTime: number;
  /** Sent with every VIP when set (the same on every node, or ECMP cannot merge the paths). */
  med: number | null;
  /** Standard communities "asn:value" sent with every VIP. */
  communities: string[];
  /** Off by default: a dead node must leave the router's table when its hold time expires. */
  gracefulRestart: boolean;
}

export const DEFAULT_BGP: BgpSettings = {
  enabled: false,
  speaker: 'bird',
  asn: null,
  routerId: null,
  holdTime: 90,
  neighbors: [],
  drainTime: 5,
  med: null,
  communities: [],
  gracefulRestart: false,
};

/** The JSON form, in the order GET shows it. `router_id` only where node-specific fields belong. */
export interface BgpJson {
  enabled: boolean;
  speaker: Speaker;
  asn: number | null;
  router_id?: string | null;
  hold_time: number;
  neighbors: { address: string; asn: number }[];
  drain_time: number;
  med: number | null;
  communities: string[];
  graceful_restart: boolean;
}

export function bgpToJson(s: BgpSettings, withRouterId: boolean): BgpJson {
  return {
    enabled: s.enabled,
    speaker: s.speaker,
    asn: s.asn,
    ...(withRouterId ? { router_id: s.routerId } : {}),
    hold_time: s.holdTime,
    neighbors: sortedNeighbors(s.neighbors).map((n) => ({ address: n.address, asn: n.asn })),
    drain_time: s.drainTime,
    med: s.med,
    communities: [...s.communities],
    graceful_restart: s.gracefulRestart,
  };
}

export const sortedNeighbors = (list: readonly BgpNeighbor[]): BgpNeighbor[] =>
  [...list].sort((a, b) => ipKey(a.address) - ipKey(b.address));

const ipKey = (ip: string): number => ip.split('.').reduce((n, o) => n * 256 + Number(o), 0);

export const ASN_MIN = 1;
/** 4294967295 is reserved (RFC 7300). */
export const ASN_MAX = 4294967294;
export const MAX_NEIGHBORS = 16;
export const MAX_COMMUNITIES = 32;

/** Every field a PUT may carry; `router_id` only on /system/bgp (the document leaves it out). */
export const BGP_FIELDS = ['enabled', 'speaker', 'asn', 'router_id', 'hold_time', 'neighbors', 'drain_time', 'med', 'communities', 'graceful_restart'] as const;
export const DOCUMENT_BGP_FIELDS = BGP_FIELDS.filter((f) => f !== 'router_id');

const STRICT_IPV4 = /^(?:(?:25[0-5]|2[0-4][0-9]|1[0-9]{2}|[1-9]?[0-9])\.){3}(?:25[0-5]|2[0-4][0-9]|1[0-9]{2}|[1-9]?[0-9])$/;
export const isStrictIPv4 = (v: unknown): v is string => typeof v === 'string' && STRICT_IPV4.test(v) && isIPv4(v);

/** An integer given as a JSON number or a string of digits (ZAPI habit). */
export function integerIn(v: unknown, min: number, max: number): number | undefined {
  const n = typeof v === 'string' ? (/^[0-9]{1,10}$/.test(v) ? Number(v) : NaN) : v;
  return typeof n === 'number' && Number.isInteger(n) && n >= min && n <= max ? n : undefined;
}

export function booleanOf(v: unknown): boolean | undefined {
  return v === true || v === 'true' ? true : v === false || v === 'false' ? false : undefined;
}

const COMMUNITY = /^(0|[1-9][0-9]{0,4}):(0|[1-9][0-9]{0,4})$/;
const isCommunity = (v: unknown): v is string =>
  typeof v === 'string' && COMMUNITY.test(v) && v.split(':').every((p) => Number(p) <= 65535);

/**
 * Applies a change (a parsed JSON object) to the current settings. Returns the merged
 * settings, or every problem found (`where` prefixes each field name, e.g. "bgp.").
 * Fields left out keep their value; `neighbors` and `communities` replace the whole list.
 */
export function mergeBgp(
  current: BgpSettings,
  body: unknown,
  options: { allowed?: readonly string[]; where?: string } = {},
): { settings: BgpSettings; problems: [] } | { settings: null; problems: string[] } {
  const allowed = options.allowed ?? BGP_FIELDS;
  const at = (name: string) => `${options.where ?? ''}${name}`;
  const problems: string[] = [];
  if (body === null || typeof body !== 'object' || Array.isArray(body)) {
    return { settings: null, problems: [`'${options.where ? options.where.replace(/\.$/, '') : 'the body'}' must be a JSON object with some of: '${allowed.join("', '")}'`] };
  }
  const given = body as Record<string, unknown>;
  const unknown = Object.keys(given).filter((k) => !allowed.includes(k));
  for (const k of unknown) problems.push(`The parameter '${at(k)}' is not correct for this call. Please, try with: '${allowed.join("', '")}'`);
  const next: BgpSettings = { ...current, neighbors: [...current.neighbors], communities: [...current.communities] };
  const has = (k: string) => Object.hasOwn(given, k) && allowed.includes(k);

  if (has('enabled')) {
    const v = booleanOf(given.enabled);
    if (v === undefined) problems.push(`The parameter '${at('enabled')}' expects true or false.`);
    else next.enabled = v;
  }
  if (has('speaker')) {
    if (given.speaker === 'bird' || given.speaker === 'external') next.speaker = given.speaker;
    else problems.push(`The parameter '${at('speaker')}' expects one of the following values: 'bird', 'external'`);
  }
  if (has('asn')) {
    const v = given.asn === null ? null : integerIn(given.asn, ASN_MIN, ASN_MAX);
    if (v === undefined) problems.push(`'${at('asn')}' has to be an AS number between '${ASN_MIN}' and '${ASN_MAX}'.`);
    else next.asn = v;
  }
  if (has('router_id')) {
    const v = given.router_id === null || given.router_id === '' ? null : isStrictIPv4(given.router_id) ? given.router_id : undefined;
    if (v === undefined) problems.push(`The value '${show(given.router_id)}' is not valid for the parameter '${at('router_id')}': an IPv4 address, or null for the node's own address toward its neighbour.`);
    else next.routerId = v;
  }
  if (has('hold_time')) {
    const v = integerIn(given.hold_time, 0, 65535);
    if (v === undefined || (v > 0 && v < 3)) problems.push(`'${at('hold_time')}' has to be 0 (no keepalives) or an integer number between '3' and '65535' (seconds).`);
    else next.holdTime = v;
  }
  if (has('drain_time')) {
    const v = integerIn(given.drain_time, 0, 3600);
    if (v === undefined) problems.push(`'${at('drain_time')}' has to be an integer number between '0' and '3600' (seconds).`);
    else next.drainTime = v;
  }
  if (has('med')) {
    const v = given.med === null ? null : integerIn(given.med, 0, 4294967295);
    if (v === undefined) problems.push(`'${at('med')}' has to be null or an integer number between '0' and '4294967295'.`);
    else next.med = v;
  }
  if (has('graceful_restart')) {
    const v = booleanOf(given.graceful_restart);
    if (v === undefined) problems.push(`The parameter '${at('graceful_restart')}' expects true or false.`);
    else next.gracefulRestart = v;
  }
  if (has('communities')) {
    const list = given.communities;
    if (!Array.isArray(list) || list.length > MAX_COMMUNITIES) {
      problems.push(`'${at('communities')}' has to be a list of at most ${MAX_COMMUNITIES} standard communities such as "65000:100".`);
    } else {
      list.forEach((c, i) => {
        if (!isCommunity(c)) problems.push(`The value '${show(c)}' is not valid for '${at(`communities[${i}]`)}': a standard community "asn:value", each part 0-65535.`);
      });
      if (list.every(isCommunity)) next.communities = [...new Set(list as string[])];
    }
  }
  if (has('neighbors')) {
    const parsed = parseNeighbors(given.neighbors, at('neighbors'));
    problems.push(...parsed.problems);
    if (parsed.problems.length === 0) next.neighbors = parsed.neighbors;
  }
  if (problems.length === 0 && next.enabled && next.speaker === 'bird') {
    if (next.asn === null) problems.push(`BGP cannot be enabled without '${at('asn')}' (this node's AS number).`);
    if (next.neighbors.length === 0) problems.push(`BGP cannot be enabled without '${at('neighbors')}' (at least one router to announce the VIPs to).`);
  }
  return problems.length > 0 ? { settings: null, problems } : { settings: next, problems: [] };
}

function parseNeighbors(value: unknown, at: string): { neighbors: BgpNeighbor[]; problems: string[] } {
  if (!Array.isArray(value) || value.length > MAX_NEIGHBORS) {
    return { neighbors: [], problems: [`'${at}' has to be a list of at most ${MAX_NEIGHBORS} neighbours, each {"address": IPv4, "asn": AS number}.`] };
  }
  const problems: string[] = [];
  const neighbors: BgpNeighbor[] = [];
  const seen = new Set<string>();
  value.forEach((n, i) => {
    const here = `${at}[${i}]`;
    if (n === null || typeof n !== 'object' || Array.isArray(n)) {
      problems.push(`'${here}' has to be an object {"address": IPv4, "asn": AS number}.`);
      return;
    }
    const o = n as Record<string, unknown>;
    for (const k of Object.keys(o)) if (k !== 'address' && k !== 'asn') problems.push(`The parameter '${here}.${k}' is not correct for this call. Please, try with: 'address', 'asn'`);
    if (!isStrictIPv4(o.address)) problems.push(`The value '${show(o.address)}' is not valid for the parameter '${here}.address': an IPv4 address.`);
    const asn = integerIn(o.asn, ASN_MIN, ASN_MAX);
    if (asn === undefined) problems.push(`'${here}.asn' has to be an AS number between '${ASN_MIN}' and '${ASN_MAX}'.`);
    if (isStrictIPv4(o.address)) {
      if (seen.has(o.address)) problems.push(`The neighbour ${o.address} is listed twice in '${at}'.`);
      seen.add(o.address);
      if (asn !== undefined) neighbors.push({ address: o.address, asn });
    }
  });
  return { neighbors: sortedNeighbors(neighbors), problems };
}

const show = (v: unknown): string => (typeof v === 'string' ? v : JSON.stringify(v));
