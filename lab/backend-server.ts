// A lab backend, run inside a backend namespace:
//   node lab/dist/lab/backend-server.js --name b1 [--http-port 80] [--udp VIP:PORT ...]
//                                   [--exit-on-stdin-close]
// HTTP `GET /` answers {"backend","client","local"}; `GET /bytes/<n>` streams n bytes;
// `GET /health` answers "ok <name>" with status 200, or with the status last written to stdin
// as a line `health <status>` (a backend whose health check fails while it still serves).
// Each --udp binds one UDP echo socket to exactly that address. Prints "ready" once every
// listener is up. Dependency-free on purpose: it must start fast, many times per test run.
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import { createSocket } from 'node:dgram';
import { parseArgs } from 'node:util';
import type { AddressInfo } from 'node:net';
import type { BackendReply } from './results.js';

const MAX_BYTES = 1 << 30;
let healthStatus = 200;
const CHUNK = Buffer.alloc(64 * 1024, 'x');

function main(): void {
  const { values } = parseArgs({
    options: {
      name: { type: 'string' },
      'http-port': { type: 'string' },
      'http-host': { type: 'string', multiple: true },
      udp: { type: 'string', multiple: true },
      'exit-on-stdin-close': { type: 'boolean' },
    },
  });
  const name = values.name;
  if (!name) usage('--name is required');
  const httpPort = values['http-port'] === undefined ? undefined : parsePort(values['http-port']);
  const udpBinds = (values.udp ?? []).map(parseHostPort);
  if (httpPort === undefined && udpBinds.length === 0) usage('give --http-port and/or --udp');

  if (values['exit-on-stdin-close']) {
    // The lab holds our stdin open: EOF means the lab's process died without cleaning up,
    // and a backend must not outlive it.
    process.stdin.on('end', () => process.exit(0));
  }
  let pending = '';
  process.stdin.setEncoding('utf8').on('data', (chunk: string) => {
    pending += chunk;
    let nl: number;
    while ((nl = pending.indexOf('\n')) >= 0) {
      const m = /^health ([1-5][0-9]{2})$/.exec(pending.slice(0, nl).trim());
      pending = pending.slice(nl + 1);
      if (m) {
        healthStatus = Number(m[1]);
        process.stdout.write(`health ${healthStatus}\n`);
      }
    }
  });
  process.stdin.resume();

  const listening: Promise<void>[] = [];
  if (httpPort !== undefined) for (const host of values['http-host'] ?? ['0.0.0.0']) listening.push(startHttp(name, httpPort, host));
  for (const bind of udpBinds) listening.push(startUdp(name, bind.host, bind.port));
  Promise.all(listening).then(
    () => process.stdout.write('ready\n'),
    (err: unknown) => {
      process.stderr.write(`backend-server ${name}: ${String(err)}\n`);
      process.exit(1);
    },
  );
}

function startHttp(name: string, port: number, host: string): Promise<void> {
  const server = createServer((req, res) => handle(name, req, res));
  // Held connections send a request every 200 ms; a long idle timeout keeps a paused test
  // from seeing the server close them.
  server.keepAliveTimeout = 65_000;
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    // Explicit wildcards: IPv4 by default, IPv6 (`::`) only when asked, and IPv6-only, so
    // remote addresses stay plain (no ::ffff: prefix). Under DSR the VIP on lo is covered.
    server.listen({ port, host, ipv6Only: host.includes(':') }, () => resolve());
  });
}

function handle(name: string, req: IncomingMessage, res: ServerResponse): void {
  const path = (req.url ?? '/').split('?')[0] ?? '/';
  if (req.method !== 'GET') return sendJson(res, 405, { error: 'method not allowed' });
  if (path === '/') {
    const sock = req.socket;
    const reply: BackendReply = {
      backend: name,
      client: `${sock.remoteAddress}:${sock.remotePort}`,
      local: `${sock.localAddress}:${sock.localPort}`,
    };
    return sendJson(res, 200, reply);
  }
  if (path === '/health') {
    const text = `${healthStatus === 200 ? 'ok' : 'failing'} ${name}\n`;
    res.writeHead(healthStatus, { 'content-type': 'text/plain', 'content-length': Buffer.byteLength(text) });
    return void res.end(text);
  }
  const m = /^\/bytes\/([0-9]+)$/.exec(path);
  if (m && m[1] !== undefined) {
    const n = Number(m[1]);
    if (n > MAX_BYTES) return sendJson(res, 400, { error: `at most ${MAX_BYTES} bytes` });
    return streamBytes(res, n);
  }
  sendJson(res, 404, { error: 'not found' });
}

function sendJson(res: ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body);
  // Explicit Content-Length: the hold client parses responses by hand and does not do chunked.
  res.writeHead(status, {
    'content-type': 'application/json',
    'content-length': Buffer.byteLength(text),
  });
  res.end(text);
}

function streamBytes(res: ServerResponse, total: number): void {
  res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': total });
  let left = total;
  const pump = (): void => {
    while (left > 0) {
      const n = Math.min(left, CHUNK.length);
      left -= n;
      if (!res.write(n === CHUNK.length ? CHUNK : CHUNK.subarray(0, n))) {
        res.once('drain', pump); // respect backpressure instead of buffering n bytes
        return;
      }
    }
    res.end();
  };
  pump();
}

function startUdp(name: string, host: string, port: number): Promise<void> {
  const sock = createSocket(host.includes(':') ? 'udp6' : 'udp4');
  sock.on('message', (msg, rinfo) => {
    const local = sock.address() as AddressInfo;
    const reply: BackendReply = {
      backend: name,
      client: `${rinfo.address}:${rinfo.port}`,
      local: `${local.address}:${local.port}`,
      echo: msg.subarray(0, 200).toString('utf8'),
    };
    sock.send(JSON.stringify(reply), rinfo.port, rinfo.address);
  });
  return new Promise((resolve, reject) => {
    sock.once('error', reject);
    // Bound to the exact address: a wildcard socket would answer a datagram sent to the VIP
    // from the backend's primary address, and the client would drop the reply.
    sock.bind(port, host, () => resolve());
  });
}

function parsePort(s: string): number {
  const n = Number(s);
  if (!Number.isInteger(n) || n < 1 || n > 65535) usage(`bad port ${s}`);
  return n;
}

function parseHostPort(s: string): { host: string; port: number } {
  const i = s.lastIndexOf(':');
  if (i <= 0) usage(`--udp wants IP:PORT, got ${s}`);
  return { host: s.slice(0, i), port: parsePort(s.slice(i + 1)) };
}

function usage(msg: string): never {
  process.stderr.write(
    `backend-server: ${msg}\n` +
      'usage: backend-server --name NAME [--http-port PORT [--http-host ADDR ...]] [--udp IP:PORT ...] [--exit-on-stdin-close]\n',
  );
  process.exit(2);
}

main();
