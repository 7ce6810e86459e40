/**
 * Validation of a configuration document as a whole: every problem is collected (one 400
 * names them all), nothing is stored until there is none. The rules are the API's (the same
 * parameter parsers and cross-field rules), applied to the document's final state, so the
 * order of its entries never matters.
 */
import { ALGORITHMS, NAT_TYPES, PERSISTENCE_MODES, PROTOCOLS, type Farm } from '../model/farm.js';
import { parseVport } from '../model/ports.js';
import { dsrBackendPortProblem, dsrFeatureProblem, familyProblem, ipv6FarmProblem, portConflict, statelessBackendPortProblem } from '../model/rules.js';
import { canonicalIpv6 } from '../model/ip.js';
import { parseCheckCommand } from '../health/command.js';
import { DEFAULT_BGP, DOCUMENT_BGP_FIELDS, booleanOf, integerIn, isStrictIPv4, mergeBgp } from '../cluster/bgp-settings.js';
import type { ConnectedNetwork } from '../model/runtime.js';
import { backendOrder, DOCUMENT_FORMAT, type ConfigDocument, type DocBackend, type DocFarm, type DocHealthCheck } from './document.js';

export const TEMPLATE_CHECKS = ['check_http', 'check_ping', 'check_tcp', 'check_udp'];
const FARMNAME = /^[a-zA-Z0-9-]+$/;
const CHECKNAME = /^[a-zA-Z0-9_-]+$/;
const ONE_LINE = /^[^\n\r\x00]+$/;
const MAINTENANCE = ['none', 'drain', 'cut'];

export type Parsed = { doc: ConfigDocument; problems: [] } | { doc: null; problems: string[] };

/** The document itself, or the whole answer of GET /system/config (envelope and all). */
export function unwrapDocument(body: unknown): unknown {
  if (body !== null && typeof body === 'object' && !Array.isArray(body)) {
    const o = body as Record<string, unknown>;
    if (!('format' in o) && 'params' in o && typeof o.params === 'object') return o.params;
  }
  return body;
}

export function parseDocument(input: unknown): Parsed {
  const body = unwrapDocument(input);
  const problems: string[] = [];
  if (body === null || typeof body !== 'object' || Array.isArray(body)) {
    return { doc: null, problems: ['The configuration must be a JSON object with format, farms, health_checks and bgp (the answer of GET /system/config).'] };
  }
  const o = body as Record<string, unknown>;
  for (const k of Object.keys(o)) {
    if (!['format', 'farms', 'health_checks', 'bgp'].includes(k)) problems.push(`The parameter '${k}' is not correct for this call. Please, try with: 'format', 'farms', 'health_checks', 'bgp'`);
  }
  if (o.format !== DOCUMENT_FORMAT) problems.push(`'format' must be '${DOCUMENT_FORMAT}'.`);
  const checks = listOf(o.health_checks, 'health_checks', problems).map((c, i) => parseCheck(c, `health_checks[${i}]`, problems));
  const farms = listOf(o.farms, 'farms', problems).map((f, i) => parseFarm(f, `farms[${i}]`, problems));
  const bgpInput = o.bgp === undefined ? {} : o.bgp;
  const bgp = mergeBgp(DEFAULT_BGP, bgpInput, { allowed: DOCUMENT_BGP_FIELDS, where: 'bgp.' });
  problems.push(...bgp.problems);

  // Cross-entry rules, on entries that parsed.
  const validChecks = checks.filter((c): c is DocHealthCheck => c !== null);
  const validFarms = farms.filter((f): f is DocFarm => f !== null);
  duplicates(validChecks.map((c) => c.name), (n) => `The health check '${n}' is listed more than once.`, problems);
  duplicates(validFarms.map((f) => f.farmname), (n) => `The farm '${n}' is listed more than once.`, problems);
  const checkNames = new Set([...TEMPLATE_CHECKS, ...validChecks.map((c) => c.name)]);
  for (const c of validChecks) {
    if (c.template && !TEMPLATE_CHECKS.includes(c.name)) problems.push(`health check '${c.name}': only ${TEMPLATE_CHECKS.join(', ')} are templates.`);
    if (!c.template && TEMPLATE_CHECKS.includes(c.name)) problems.push(`health check '${c.name}' is a built-in template: give it "template": true.`);
  }
  const running: Farm[] = [];
  for (const f of validFarms) {
    if (f.farmguardian !== null && !checkNames.has(f.farmguardian)) problems.push(`farm '${f.farmname}': the health check '${f.farmguardian}' is neither a template nor in health_checks.`);
    const shape = asFarm(f);
    const shapes = f.backends.map((b) => ({ ip: b.ip, port: b.port, maxConns: b.max_conns }));
    const persistence6 = f.persistence === 'srcip_srcport' || f.persistence === 'srcip_dstport' ? ipv6FarmProblem({ vip: f.vip, nattype: 'dsr', persistence: f.persistence }) : null;
    const rule =
      shapes.map((b) => familyProblem(shape, b) ?? dsrBackendPortProblem(shape, b) ?? statelessBackendPortProblem(shape, b)).find((p) => p !== null) ??
      persistence6 ??
      dsrFeatureProblem(shape, shapes);
    if (rule) problems.push(`farm '${f.farmname}': ${rule}`);
    if (f.running) {
      const conflict = portConflict(shape, running);
      if (conflict) problems.push(`farm '${f.farmname}': ${conflict}`);
      running.push(shape);
    }
  }
  if (problems.length > 0 || !bgp.settings) return { doc: null, problems };
  const { router_id: _ignored, ...bgpJson } = {
    enabled: bgp.settings.enabled,
    speaker: bgp.settings.speaker,
    asn: bgp.settings.asn,
    router_id: null,
    hold_time: bgp.settings.holdTime,
    neighbors: bgp.settings.neighbors,
    drain_time: bgp.settings.drainTime,
    med: bgp.settings.med,
    communities: bgp.settings.communities,
    graceful_restart: bgp.settings.gracefulRestart,
  };
  return {
    doc: {
      format: DOCUMENT_FORMAT,
      farms: validFarms.sort((a, b) => (a.farmname < b.farmname ? -1 : 1)),
      health_checks: validChecks.sort((a, b) => (a.name < b.name ? -1 : 1)),
      bgp: bgpJson,
    },
    problems: [],
  };
}

/**
 * What the host must allow (async: it looks at the interfaces): every VIP in a connected
 * network, or BGP enabled in the document; dsr and stateless_dnat backends directly
 * connected to the network that carries the VIP (with BGP and a routed VIP, their own).
 */
export async function hostProblems(doc: ConfigDocument, connectedNetworks: (ips: readonly string[]) => Promise<(ConnectedNetwork | null)[]>): Promise<string[]> {
  const problems: string[] = [];
  for (const f of doc.farms) {
    const [vipNet, ...nets] = await connectedNetworks([f.vip, ...f.backends.map((b) => b.ip)]);
    const carrier = vipNet ?? (doc.bgp.enabled ? (nets.find((n) => n !== null) ?? null) : null);
    if (!vipNet && !doc.bgp.enabled) {
      problems.push(`farm '${f.farmname}': the VIP '${f.vip}' is not in a network connected to this host (enable BGP in 'bgp' to announce VIPs outside them).`);
      continue;
    }
    if (!carrier || (f.nattype !== 'dsr' && f.nattype !== 'stateless_dnat')) continue;
    f.backends.forEach((b, i) => {
      const n = nets[i];
      if (!n || n.interface !== carrier.interface || n.network !== carrier.network) {
        problems.push(`farm '${f.farmname}': the backend IP '${b.ip}' is not in the network ${carrier.network} of interface '${carrier.interface}' that carries the VIP: in nattype '${f.nattype}' frames are forwarded by MAC address.`);
      }
    });
  }
  return problems;
}

function asFarm(f: DocFarm): Farm {
  return {
    id: -1,
    name: f.farmname,
    profile: 'l4xnat',
    vip: f.vip,
    vport: f.vport,
    protocol: f.protocol as Farm['protocol'],
    nattype: f.nattype as Farm['nattype'],
    algorithm: f.algorithm as Farm['algorithm'],
    persistence: f.persistence as Farm['persistence'],
    ttl: f.ttl,
    running: f.running,
    generation: 0,
    slot: -1,
  };
}

function listOf(v: unknown, name: string, problems: string[]): unknown[] {
  if (v === undefined) return [];
  if (!Array.isArray(v)) {
    problems.push(`'${name}' must be a list.`);
    return [];
  }
  return v;
}

function duplicates(names: string[], message: (n: string) => string, problems: string[]): void {
  const seen = new Set<string>();
  for (const n of names) {
    if (seen.has(n)) problems.push(message(n));
    seen.add(n);
  }
}

function objectAt(v: unknown, at: string, problems: string[]): Record<string, unknown> | null {
  if (v === null || typeof v !== 'object' || Array.isArray(v)) {
    problems.push(`'${at}' must be an object.`);
    return null;
  }
  return v as Record<string, unknown>;
}

function unknownKeys(o: Record<string, unknown>, allowed: readonly string[], at: string, problems: string[]): void {
  for (const k of Object.keys(o)) if (!allowed.includes(k)) problems.push(`The parameter '${at}.${k}' is not correct for this call. Please, try with: '${allowed.join("', '")}'`);
}

const FARM_KEYS = ['farmname', 'vip', 'vport', 'protocol', 'nattype', 'algorithm', 'persistence', 'ttl', 'running', 'farmguardian', 'backends'];
const BACKEND_KEYS = ['ip', 'port', 'weight', 'priority', 'max_conns', 'maintenance'];
const CHECK_KEYS = ['name', 'template', 'description', 'command', 'interval', 'timeout', 'fall', 'rise', 'cut_conns', 'log', 'backend_alias'];

function parseFarm(v: unknown, at: string, problems: string[]): DocFarm | null {
  const o = objectAt(v, at, problems);
  if (!o) return null;
  const before = problems.length;
  unknownKeys(o, FARM_KEYS, at, problems);
  const name = typeof o.farmname === 'string' && FARMNAME.test(o.farmname) && o.farmname !== '0' ? o.farmname : undefined;
  if (!name) problems.push(`'${at}.farmname' must be letters, numbers or hyphens (not '0'): got ${show(o.farmname)}.`);
  const here = name ? `farm '${name}'` : at;
  const vip = addressOf(o.vip);
  if (vip === undefined) problems.push(`${here}: 'vip' must be an IPv4 or IPv6 address: got ${show(o.vip)}.`);
  const vport = typeof o.vport === 'string' && parseVport(o.vport) ? o.vport : undefined;
  if (!vport) problems.push(`${here}: 'vport' must be a port, a comma list of ports and 'low:high' ranges, or '*': got ${show(o.vport)}.`);
  const protocol = oneOf(o.protocol ?? 'tcp', PROTOCOLS, `${here}: 'protocol'`, problems);
  if (vport && protocol && (vport === '*') !== (protocol === 'all')) problems.push(`${here}: vport '*' goes with protocol 'all', and only with it.`);
  const nattype = oneOf(o.nattype === 'snat' ? 'nat' : (o.nattype ?? 'nat'), NAT_TYPES, `${here}: 'nattype'`, problems);
  const algorithm = oneOf(o.algorithm ?? 'weight', ALGORITHMS, `${here}: 'algorithm'`, problems);
  const persistenceIn = o.persistence === 'none' ? '' : o.persistence === 'ip' ? 'srcip' : (o.persistence ?? '');
  const persistence = oneOf(persistenceIn, PERSISTENCE_MODES, `${here}: 'persistence'`, problems);
  const ttl = integerIn(o.ttl ?? 60, 1, 2_147_483_647);
  if (ttl === undefined) problems.push(`${here}: 'ttl' must be an integer number of seconds, at least 1.`);
  const running = booleanOf(o.running ?? true);
  if (running === undefined) problems.push(`${here}: 'running' must be true or false.`);
  const farmguardian = o.farmguardian === undefined || o.farmguardian === null || o.farmguardian === '' ? null : typeof o.farmguardian === 'string' && CHECKNAME.test(o.farmguardian) ? o.farmguardian : undefined;
  if (farmguardian === undefined) problems.push(`${here}: 'farmguardian' must be a health check name or null.`);
  const backends = listOf(o.backends, `${here}: backends`, problems)
    .map((b, i) => parseBackend(b, `${here}: backends[${i}]`, problems))
    .filter((b): b is DocBackend => b !== null);
  const keys = backends.map((b) => `${b.ip}:${b.port ?? ''}`);
  duplicates(keys, (k) => `${here}: the backend ${k.replace(/:$/, '')} is listed more than once.`, problems);
  if (problems.length > before) return null;
  return {
    farmname: name!,
    vip: vip!,
    vport: vport!,
    protocol: protocol!,
    nattype: nattype!,
    algorithm: algorithm!,
    persistence: persistence!,
    ttl: ttl!,
    running: running!,
    farmguardian: farmguardian ?? null,
    backends: backends.sort(backendOrder),
  };
}

/** A strict dotted quad as given, or an IPv6 address in its canonical form (as the API stores it). */
const addressOf = (v: unknown): string | undefined => (isStrictIPv4(v) ? v : typeof v === 'string' ? (canonicalIpv6(v) ?? undefined) : undefined);

function parseBackend(v: unknown, at: string, problems: string[]): DocBackend | null {
  const o = objectAt(v, at, problems);
  if (!o) return null;
  const before = problems.length;
  unknownKeys(o, BACKEND_KEYS, at, problems);
  const ip = addressOf(o.ip);
  if (ip === undefined) problems.push(`${at}: 'ip' must be an IPv4 or IPv6 address: got ${show(o.ip)}.`);
  const port = o.port === undefined || o.port === null || o.port === '' ? null : integerIn(o.port, 1, 65535);
  if (port === undefined) problems.push(`${at}: 'port' must be 1-65535, or null for the client's destination port: got ${show(o.port)}.`);
  const weight = integerIn(o.weight ?? 1, 1, 9);
  if (weight === undefined) problems.push(`${at}: 'weight' has to be an integer number between '1' and '9'.`);
  const priority = integerIn(o.priority ?? 1, 1, 9);
  if (priority === undefined) problems.push(`${at}: 'priority' has to be an integer number between '1' and '9'.`);
  const maxConns = integerIn(o.max_conns ?? 0, 0, 2_147_483_647);
  if (maxConns === undefined) problems.push(`${at}: 'max_conns' has to be an integer number greater than or equal to '0'.`);
  const maintenance = oneOf(o.maintenance ?? 'none', MAINTENANCE, `${at}: 'maintenance'`, problems);
  if (problems.length > before) return null;
  return { ip: ip!, port: port!, weight: weight!, priority: priority!, max_conns: maxConns!, maintenance: maintenance as DocBackend['maintenance'] };
}

function parseCheck(v: unknown, at: string, problems: string[]): DocHealthCheck | null {
  const o = objectAt(v, at, problems);
  if (!o) return null;
  const before = problems.length;
  unknownKeys(o, CHECK_KEYS, at, problems);
  const name = typeof o.name === 'string' && CHECKNAME.test(o.name) && o.name !== '0' ? o.name : undefined;
  if (!name) problems.push(`'${at}.name' must be letters, numbers, _ or - (not '0'): got ${show(o.name)}.`);
  const here = name ? `health check '${name}'` : at;
  const template = booleanOf(o.template ?? false);
  if (template === undefined) problems.push(`${here}: 'template' must be true or false.`);
  const description = o.description === undefined || o.description === '' ? '' : typeof o.description === 'string' && ONE_LINE.test(o.description) ? o.description : undefined;
  if (description === undefined) problems.push(`${here}: 'description' must be one line of text.`);
  let command: string | undefined;
  if (typeof o.command !== 'string' || !ONE_LINE.test(o.command)) problems.push(`${here}: 'command' must be one line of text.`);
  else {
    const parsed = parseCheckCommand(o.command);
    if (parsed.ok) command = o.command;
    else problems.push(`${here}: 'command' ${parsed.problem}`);
  }
  const interval = integerIn(o.interval ?? 15, 1, 86400);
  if (interval === undefined) problems.push(`${here}: 'interval' has to be an integer number between '1' and '86400'.`);
  const timeout = integerIn(o.timeout ?? interval ?? 15, 1, 86400);
  if (timeout === undefined) problems.push(`${here}: 'timeout' has to be an integer number between '1' and '86400'.`);
  if (interval !== undefined && timeout !== undefined && timeout > interval) problems.push(`${here}: the timeout (${timeout} s) cannot be greater than the interval (${interval} s).`);
  const fall = integerIn(o.fall ?? 1, 1, 100);
  if (fall === undefined) problems.push(`${here}: 'fall' has to be an integer number between '1' and '100'.`);
  const rise = integerIn(o.rise ?? 1, 1, 100);
  if (rise === undefined) problems.push(`${here}: 'rise' has to be an integer number between '1' and '100'.`);
  const flags = ['cut_conns', 'log', 'backend_alias'].map((k) => {
    const b = booleanOf(o[k] ?? false);
    if (b === undefined) problems.push(`${here}: '${k}' must be true or false.`);
    return b;
  });
  if (problems.length > before) return null;
  return {
    name: name!,
    template: template!,
    description: description!,
    command: command!,
    interval: interval!,
    timeout: timeout!,
    fall: fall!,
    rise: rise!,
    cut_conns: flags[0]!,
    log: flags[1]!,
    backend_alias: flags[2]!,
  };
}

function oneOf<T extends string>(v: unknown, values: readonly T[], at: string, problems: string[]): T | undefined {
  if (typeof v === 'string' && (values as readonly string[]).includes(v)) return v as T;
  problems.push(`${at} expects one of the following values: '${values.join("', '")}': got ${show(v)}.`);
  return undefined;
}

const show = (v: unknown): string => (v === undefined ? 'nothing' : JSON.stringify(v));
