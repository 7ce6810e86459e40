/**
 * The native checkers: TCP connect, HTTP(S) GET, UDP and ICMP echo, each against one
 * backend address. A checker never throws: it resolves with the outcome, a short reason and
 * how long it took. ICMP needs a raw socket, which Node does not have: /usr/bin/ping runs
 * with an argument array (no shell) and an address validated as IPv4.
 */
import net from 'node:net';
import http from 'node:http';
import https from 'node:https';
import dgram from 'node:dgram';
import { execFile } from 'node:child_process';
import type { CheckSpec, HttpSpec, PingSpec, TcpSpec, UdpSpec } from './command.js';

export interface CheckTarget {
  spec: CheckSpec;
  ip: string;
  /** null only for ping. */
  port: number | null;
}

export interface CheckResult {
  ok: boolean;
  reason: string;
  latencyMs: number;
}

export type Checker = (target: CheckTarget, timeoutMs: number) => Promise<CheckResult>;

const PING = '/usr/bin/ping';
const MAX_BODY = 1024 * 1024;
const USER_AGENT = 'nftfarm-health-check';

/** The check's budget: the command's -t when shorter than the check's timeout. */
export function effectiveTimeoutMs(spec: CheckSpec, checkTimeoutS: number): number {
  const t = spec.timeoutS === null ? checkTimeoutS : Math.min(spec.timeoutS, checkTimeoutS);
  return Math.max(1, Math.round(t * 1000));
}

export const runCheck: Checker = (target, timeoutMs) => {
  switch (target.spec.kind) {
    case 'tcp':
      return tcpCheck(target.spec, target.ip, target.port!, timeoutMs);
    case 'http':
      return httpCheck(target.spec, target.ip, target.port!, timeoutMs);
    case 'udp':
      return udpCheck(target.spec, target.ip, target.port!, timeoutMs);
    case 'ping':
      return pingCheck(target.spec, target.ip, timeoutMs);
  }
};

/** Runs `body` with a deadline; `finish` settles once, whoever calls it first. */
function withDeadline(timeoutMs: number, onTimeout: string | { ok: boolean; reason: string }, body: (finish: (ok: boolean, reason: string) => void) => () => void): Promise<CheckResult> {
  const started = performance.now();
  return new Promise((resolve) => {
    let done = false;
    let cleanup: () => void = () => {};
    const finish = (ok: boolean, reason: string): void => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      cleanup();
      resolve({ ok, reason, latencyMs: Math.round((performance.now() - started) * 10) / 10 });
    };
    const late = typeof onTimeout === 'string' ? { ok: false, reason: onTimeout } : onTimeout;
    const timer = setTimeout(() => finish(late.ok, late.reason), timeoutMs);
    try {
      cleanup = body(finish);
    } catch (err) {
      finish(false, errorReason(err));
    }
  });
}

function errorReason(err: unknown): string {
  const e = err as NodeJS.ErrnoException;
  switch (e?.code) {
    case 'ECONNREFUSED':
      return 'connection refused';
    case 'ECONNRESET':
      return 'connection reset';
    case 'EHOSTUNREACH':
      return 'host unreachable';
    case 'ENETUNREACH':
      return 'network unreachable';
    default:
      return e?.code ? `${e.code}: ${e.message}` : String((err as Error)?.message ?? err);
  }
}

const secondsText = (ms: number): string => `${Math.round(ms) / 1000} s`;

export function tcpCheck(spec: TcpSpec, ip: string, port: number, timeoutMs: number): Promise<CheckResult> {
  return withDeadline(timeoutMs, `no TCP answer from ${ip}:${port} within ${secondsText(timeoutMs)}`, (finish) => {
    const started = performance.now();
    const socket = net.connect({ host: ip, port });
    let received = '';
    socket.on('error', (err) => finish(false, `${errorReason(err)} (${ip}:${port})`));
    socket.on('connect', () => {
      const ms = performance.now() - started;
      if (spec.criticalS !== null && ms > spec.criticalS * 1000) return finish(false, `connected in ${Math.round(ms)} ms, slower than ${spec.criticalS} s`);
      if (spec.send !== null) socket.write(spec.send);
      if (spec.expect === null) return finish(true, `TCP connect to ${ip}:${port}`);
    });
    socket.on('data', (chunk: Buffer) => {
      received = (received + chunk.toString('latin1')).slice(-MAX_BODY);
      if (spec.expect !== null && received.includes(spec.expect)) finish(true, `TCP ${ip}:${port} answered '${spec.expect}'`);
    });
    socket.on('end', () => finish(false, `the server closed without sending '${spec.expect}'`));
    return () => socket.destroy();
  });
}

export function httpCheck(spec: HttpSpec, ip: string, port: number, timeoutMs: number): Promise<CheckResult> {
  const scheme = spec.ssl ? 'https' : 'http';
  // An IPv6 literal is bracketed in URLs and Host headers.
  const hostText = ip.includes(':') ? `[${ip}]` : ip;
  const url = `${scheme}://${hostText}:${port}${spec.path}`;
  return withDeadline(timeoutMs, `no HTTP answer from ${url} within ${secondsText(timeoutMs)}`, (finish) => {
    const started = performance.now();
    const options: https.RequestOptions = {
      host: ip,
      port,
      path: spec.path,
      method: spec.method,
      agent: false,
      headers: { Host: spec.vhost ?? (port === (spec.ssl ? 443 : 80) ? hostText : `${hostText}:${port}`), 'User-Agent': USER_AGENT, Connection: 'close' },
    };
    // Like check_http: the certificate is not verified (backends often have self-signed ones).
    if (spec.ssl) Object.assign(options, { rejectUnauthorized: false, servername: spec.vhost?.replace(/:[0-9]+$/, '') });
    const req = (spec.ssl ? https : http).request(options, (res) => {
      const statusLine = `HTTP/${res.httpVersion} ${res.statusCode} ${res.statusMessage ?? ''}`.trim();
      const status = res.statusCode ?? 0;
      const statusOk = spec.expect === null ? status >= 200 && status < 400 : spec.expect.some((e) => statusLine.includes(e));
      if (!statusOk) {
        res.resume();
        return finish(false, `${url} answered '${statusLine}'${spec.expect ? `, expected '${spec.expect.join("' or '")}'` : ''}`);
      }
      const ms = performance.now() - started;
      if (spec.criticalS !== null && ms > spec.criticalS * 1000) {
        res.resume();
        return finish(false, `${url} answered in ${Math.round(ms)} ms, slower than ${spec.criticalS} s`);
      }
      if (spec.body === null) {
        res.resume();
        return finish(true, `${url} answered '${statusLine}'`);
      }
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => {
        if (body.length < MAX_BODY) body += chunk;
        if (body.includes(spec.body!)) finish(true, `${url} answered '${statusLine}' with '${spec.body}'`);
      });
      res.on('end', () => finish(false, `${url} answered '${statusLine}' without '${spec.body}' in the body`));
      res.on('error', (err) => finish(false, errorReason(err)));
    });
    req.on('error', (err) => finish(false, `${errorReason(err)} (${url})`));
    req.end();
    return () => req.destroy();
  });
}

export function udpCheck(spec: UdpSpec, ip: string, port: number, timeoutMs: number): Promise<CheckResult> {
  // Silence is a pass unless a reply is expected: UDP services need not answer arbitrary data,
  // while a closed port answers with ICMP port unreachable (ECONNREFUSED on a connected socket).
  const silence = spec.expect === null;
  const onTimeout = silence
    ? { ok: true, reason: `no ICMP unreachable from udp ${ip}:${port} within ${secondsText(timeoutMs)}` }
    : `no UDP reply from ${ip}:${port} within ${secondsText(timeoutMs)}`;
  return withDeadline(timeoutMs, onTimeout, (finish) => {
    const socket = dgram.createSocket(net.isIPv6(ip) ? 'udp6' : 'udp4');
    let closed = false;
    socket.on('error', (err) => finish(false, `${(err as NodeJS.ErrnoException).code === 'ECONNREFUSED' ? 'port unreachable (ICMP)' : errorReason(err)} (udp ${ip}:${port})`));
    socket.on('message', (msg) => {
      if (spec.expect === null || msg.toString('latin1').includes(spec.expect)) finish(true, `UDP reply from ${ip}:${port}`);
    });
    // Node calls back with the error when the connect fails (it emits no 'error' then), and
    // the check may have ended (deadline) before the callback: either way the socket is not
    // connected, and send() without a port would throw out of the callback and end the daemon.
    const connected = (err?: Error | null) => {
      if (closed) return;
      if (err) return finish(false, `${errorReason(err)} (udp ${ip}:${port})`);
      try {
        socket.send(Buffer.from(spec.send ?? '', 'utf8'));
      } catch (sendErr) {
        finish(false, `${errorReason(sendErr)} (udp ${ip}:${port})`);
      }
    };
    socket.connect(port, ip, connected as () => void);
    return () => {
      if (!closed) socket.close();
      closed = true;
    };
  });
}

export function pingCheck(spec: PingSpec, ip: string, timeoutMs: number): Promise<CheckResult> {
  // The address reaches an exec'd program: accept only an IPv4 or IPv6 literal (no zone, no
  // option-like text), and say which family: ICMPv6 echo for IPv6 backends.
  const v6 = net.isIPv6(ip) && /^[0-9a-f:.]+$/i.test(ip);
  if (!net.isIPv4(ip) && !v6) return Promise.resolve({ ok: false, reason: `not an IP address: ${ip}`, latencyMs: 0 });
  // -p requests 0.2 s apart, then up to the rest of the budget for the last reply.
  const waitS = Math.max(0.2, (timeoutMs - (spec.packets - 1) * 200) / 1000).toFixed(1);
  const args = [v6 ? '-6' : '-4', '-n', '-q', '-c', String(spec.packets), '-i', '0.2', '-W', waitS, ip];
  return withDeadline(timeoutMs + 500, `ping ${ip} did not finish within ${secondsText(timeoutMs)}`, (finish) => {
    const child = execFile(PING, args, { timeout: timeoutMs + 400, env: { LC_ALL: 'C' } }, (err, stdout) => {
      const m = /(\d+) packets transmitted, (\d+) received/.exec(stdout);
      if (!m) return finish(false, `ping ${ip} failed: ${err ? errorReason(err) : 'no summary'}`);
      const sent = Number(m[1]);
      const received = Number(m[2]);
      const lossPct = sent === 0 ? 100 : Math.round(((sent - received) * 100) / sent);
      const rta = /= [0-9.]+\/([0-9.]+)\//.exec(stdout);
      const rtaMs = rta ? Number(rta[1]) : null;
      const summary = `ping ${ip}: ${received}/${sent} replies${rtaMs === null ? '' : `, average ${rtaMs} ms`}`;
      const limit = spec.critical ?? { rtaMs: Infinity, lossPct: 100 };
      if (received === 0 || lossPct >= limit.lossPct) return finish(false, `${summary} (${lossPct}% loss)`);
      if (rtaMs !== null && rtaMs > limit.rtaMs) return finish(false, `${summary}, above ${limit.rtaMs} ms`);
      finish(true, summary);
    });
    return () => child.kill();
  });
}
