/**
 * Health check commands, ZEVENET farmguardian style (`check_tcp -H HOST -p PORT -t 5`), parsed
 * into one of the native checkers and its arguments. nftfarm never hands a command to a
 * shell: anything this parser does not know, shell syntax included, is refused with a
 * message the API sends back as a 400. Pure.
 *
 * HOST and PORT are placeholders for each backend's IP and port; a check always targets the
 * backend (never the VIP), so the address options must be HOST.
 */

/** `PORT` (the backend's port, or the farm's virtual port) or a fixed port. */
export type PortRef = 'PORT' | number;

export interface TcpSpec {
  kind: 'tcp';
  port: PortRef;
  /** -t, seconds; capped by the check's own timeout. */
  timeoutS: number | null;
  /** -s: sent once connected. */
  send: string | null;
  /** -e: must appear in what the server sends. */
  expect: string | null;
  /** -c: a connection slower than this many seconds fails. */
  criticalS: number | null;
}

export interface HttpSpec {
  kind: 'http';
  /** null: 80, or 443 with -S. */
  port: PortRef | null;
  timeoutS: number | null;
  ssl: boolean;
  method: 'GET' | 'HEAD';
  /** -u, starts with '/'. */
  path: string;
  /** -H with a name: the Host header (and TLS server name); null: the backend's IP. */
  vhost: string | null;
  /** -e: each item is looked for in the status line ("200", "HTTP/1.1 200"); null: any 2xx or 3xx. */
  expect: string[] | null;
  /** -s: must appear in the body. */
  body: string | null;
  criticalS: number | null;
}

export interface UdpSpec {
  kind: 'udp';
  port: PortRef;
  timeoutS: number | null;
  /** -s: the datagram sent (default: empty). */
  send: string | null;
  /** -e: a reply containing this is required; without it, silence (no ICMP unreachable) passes. */
  expect: string | null;
}

export interface PingSpec {
  kind: 'ping';
  /** -p: echo requests sent. */
  packets: number;
  timeoutS: number | null;
  /** -c "rta,loss%": fails when the average round trip exceeds rtaMs or the loss reaches lossPct. */
  critical: { rtaMs: number; lossPct: number } | null;
}

export type CheckSpec = TcpSpec | HttpSpec | UdpSpec | PingSpec;

export type ParsedCommand = { ok: true; spec: CheckSpec } | { ok: false; problem: string };

export const CHECK_PROGRAMS = ['check_tcp', 'check_http', 'check_udp', 'check_ping'] as const;

const SUPPORTED = `nftfarm runs ${CHECK_PROGRAMS.join(', ')} natively and never runs a shell command`;

/** Shell syntax, refused anywhere (even quoted: the text would mean something else to a user reading it as shell). */
const FORBIDDEN = /[;|&$`<>\\(){}\n\r\0]/;

/** Splits on blanks; '...' and "..." group words (no escapes inside). */
export function tokenize(command: string): string[] | string {
  const tokens: string[] = [];
  let i = 0;
  while (i < command.length) {
    while (i < command.length && /\s/.test(command[i]!)) i++;
    if (i >= command.length) break;
    let token = '';
    while (i < command.length && !/\s/.test(command[i]!)) {
      const c = command[i]!;
      if (c === '"' || c === "'") {
        const end = command.indexOf(c, i + 1);
        if (end < 0) return `it has an unterminated ${c === '"' ? 'double' : 'single'} quote`;
        token += command.slice(i + 1, end);
        i = end + 1;
      } else {
        token += c;
        i++;
      }
    }
    tokens.push(token);
  }
  return tokens;
}

class Refused extends Error {}

type Options = Map<string, string | true>;

/** `-x value` pairs and bare flags; `flags` take no value. */
function readOptions(program: string, args: string[], withValue: readonly string[], flags: readonly string[]): Options {
  const out: Options = new Map();
  for (let i = 0; i < args.length; i++) {
    const arg = args[i]!;
    if (flags.includes(arg)) {
      out.set(arg, true);
      continue;
    }
    if (!withValue.includes(arg)) {
      const known = [...withValue, ...flags].join(' ');
      throw new Refused(arg.startsWith('-') ? `${program} does not take the option '${arg}' (it takes: ${known})` : `unexpected argument '${arg}' (${program} takes: ${known})`);
    }
    const value = args[i + 1];
    if (value === undefined) throw new Refused(`the option ${arg} of ${program} needs a value`);
    if (out.has(arg)) throw new Refused(`the option ${arg} is given twice`);
    out.set(arg, value);
    i++;
  }
  return out;
}

const str = (o: Options, k: string): string | null => {
  const v = o.get(k);
  return typeof v === 'string' ? v : null;
};

function hostMustBePlaceholder(o: Options, key: string, program: string): void {
  const v = str(o, key);
  if (v === null) throw new Refused(`${program} needs ${key} HOST`);
  if (v !== 'HOST') throw new Refused(`${key} must be HOST (replaced by each backend's IP): a check always targets the backend, got '${v}'`);
}

function portRef(o: Options, key: string, required: boolean, program: string): PortRef | null {
  const v = str(o, key);
  if (v === null) {
    if (required) throw new Refused(`${program} needs ${key} PORT (or a port number)`);
    return null;
  }
  if (v === 'PORT') return 'PORT';
  if (/^[0-9]{1,5}$/.test(v) && Number(v) >= 1 && Number(v) <= 65535) return Number(v);
  throw new Refused(`${key} must be PORT or a port number 1-65535, got '${v}'`);
}

function seconds(o: Options, key: string): number | null {
  const v = str(o, key);
  if (v === null) return null;
  if (!/^[0-9]{1,5}(\.[0-9]{1,3})?$/.test(v) || Number(v) <= 0) throw new Refused(`${key} expects a number of seconds greater than 0, got '${v}'`);
  return Number(v);
}

function text(o: Options, key: string): string | null {
  const v = str(o, key);
  if (v === null) return null;
  if (v.length === 0 || v.length > 1024) throw new Refused(`${key} expects a text of 1 to 1024 characters`);
  return v;
}

/** Nagios threshold "rta,loss%" (rta in ms). */
function pingThreshold(o: Options, key: string): { rtaMs: number; lossPct: number } | null {
  const v = str(o, key);
  if (v === null) return null;
  const m = /^([0-9]{1,6}(?:\.[0-9]{1,3})?),([0-9]{1,3})%$/.exec(v);
  if (!m || Number(m[2]) > 100) throw new Refused(`${key} expects 'rta,loss%' (milliseconds, percent 0-100), got '${v}'`);
  return { rtaMs: Number(m[1]), lossPct: Number(m[2]) };
}

const HOSTNAME = /^(?=.{1,253}$)[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*(?::[0-9]{1,5})?$/;

function parseTcp(args: string[]): TcpSpec {
  const o = readOptions('check_tcp', args, ['-H', '-p', '-t', '-s', '-e', '-w', '-c'], []);
  hostMustBePlaceholder(o, '-H', 'check_tcp');
  seconds(o, '-w'); // a warning changes nothing about up or down; validated, then ignored
  return { kind: 'tcp', port: portRef(o, '-p', true, 'check_tcp')!, timeoutS: seconds(o, '-t'), send: text(o, '-s'), expect: text(o, '-e'), criticalS: seconds(o, '-c') };
}

function parseHttp(args: string[]): HttpSpec {
  const o = readOptions('check_http', args, ['-H', '-I', '-p', '-t', '-u', '-e', '-s', '-j', '-w', '-c'], ['-S', '--ssl']);
  let vhost: string | null = null;
  if (o.has('-I')) {
    hostMustBePlaceholder(o, '-I', 'check_http');
    const h = str(o, '-H');
    if (h !== null && h !== 'HOST') {
      if (!HOSTNAME.test(h)) throw new Refused(`-H expects a host name for the Host header, got '${h}'`);
      vhost = h;
    }
  } else {
    const h = str(o, '-H');
    if (h === null) throw new Refused('check_http needs -I HOST or -H HOST');
    if (h !== 'HOST') throw new Refused(`with -H ${h} the check would not target the backend: use -I HOST -H ${h} (the name becomes the Host header)`);
  }
  const path = str(o, '-u') ?? '/';
  if (!/^\/[\x21-\x7e]{0,1023}$/.test(path)) throw new Refused(`-u expects a path starting with '/' without spaces, got '${path}'`);
  const method = str(o, '-j') ?? 'GET';
  if (method !== 'GET' && method !== 'HEAD') throw new Refused(`-j expects GET or HEAD, got '${method}'`);
  const e = text(o, '-e');
  seconds(o, '-w');
  return {
    kind: 'http',
    port: portRef(o, '-p', false, 'check_http'),
    timeoutS: seconds(o, '-t'),
    ssl: o.has('-S') || o.has('--ssl'),
    method,
    path,
    vhost,
    expect: e === null ? null : e.split(',').map((s) => s.trim()).filter((s) => s !== ''),
    body: text(o, '-s'),
    criticalS: seconds(o, '-c'),
  };
}

function parseUdp(args: string[]): UdpSpec {
  const o = readOptions('check_udp', args, ['-H', '-p', '-t', '-s', '-e'], []);
  hostMustBePlaceholder(o, '-H', 'check_udp');
  return { kind: 'udp', port: portRef(o, '-p', true, 'check_udp')!, timeoutS: seconds(o, '-t'), send: text(o, '-s'), expect: text(o, '-e') };
}

function parsePing(args: string[]): PingSpec {
  const o = readOptions('check_ping', args, ['-H', '-p', '-t', '-w', '-c'], []);
  hostMustBePlaceholder(o, '-H', 'check_ping');
  pingThreshold(o, '-w');
  const p = str(o, '-p') ?? '5';
  if (!/^[0-9]{1,2}$/.test(p) || Number(p) < 1 || Number(p) > 20) throw new Refused(`-p expects a number of packets 1-20, got '${p}'`);
  return { kind: 'ping', packets: Number(p), timeoutS: seconds(o, '-t'), critical: pingThreshold(o, '-c') };
}

/** Parses and validates a check command; the problem is a sentence the API can send. */
export function parseCheckCommand(command: string): ParsedCommand {
  const bad = FORBIDDEN.exec(command);
  if (bad) return { ok: false, problem: `it contains '${bad[0] === '\n' ? '\\n' : bad[0]}', which is shell syntax: ${SUPPORTED}` };
  const tokens = tokenize(command);
  if (typeof tokens === 'string') return { ok: false, problem: tokens };
  const [program, ...args] = tokens;
  if (program === undefined) return { ok: false, problem: 'it is empty' };
  try {
    switch (program) {
      case 'check_tcp':
        return { ok: true, spec: parseTcp(args) };
      case 'check_http':
        return { ok: true, spec: parseHttp(args) };
      case 'check_udp':
        return { ok: true, spec: parseUdp(args) };
      case 'check_ping':
        return { ok: true, spec: parsePing(args) };
      default:
        return { ok: false, problem: `'${program}' is not a supported check: ${SUPPORTED}` };
    }
  } catch (err) {
    if (err instanceof Refused) return { ok: false, problem: err.message };
    throw err;
  }
}

/** The API's message for a refused command. */
export const commandProblemMessage = (command: string, problem: string): string => `The command '${command}' is not valid: ${problem}.`;

/** The port a spec probes for a backend; null when PORT has no single value (farm on '*' or several ports). */
export function resolvePort(ref: PortRef | null, backendPort: number | null, farmPort: number | null, sslDefault = false): number | null {
  if (ref === null) return sslDefault ? 443 : 80;
  if (ref === 'PORT') return backendPort ?? farmPort;
  return ref;
}
