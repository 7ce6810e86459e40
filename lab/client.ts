// Traffic checks run inside the lab's client namespace. Each command prints one JSON result
// on stdout (hold prints a "ready" event first) and exits 0 whenever it could measure, however
// many requests failed: judging the numbers is the test's job. Usage errors exit 2.
//
//   client.js http-many --url URL [--count 50] [--timeout-ms 2000]
//   client.js download  --url URL [--timeout-ms 30000]
//   client.js hold      --host IP --port N [--count 20] [--interval-ms 200] [--timeout-ms 2000]
//   client.js udp       --host IP --port N [--count 20] [--timeout-ms 2000]
import { request as httpRequest, type IncomingMessage } from 'node:http';
import { connect, type Socket } from 'node:net';
import { createSocket } from 'node:dgram';
import { createInterface } from 'node:readline';
import { parseArgs } from 'node:util';
import { takeResponse } from './http-response.js';
import {
  countInto,
  isBackendReply,
  type BackendReply,
  type DownloadResult,
  type HoldReady,
  type HoldResult,
  type HttpManyResult,
  type UdpResult,
} from './results.js';

const MAX_ERRORS = 10;
const MAX_SAMPLES = 3;

type Options = Record<string, string | undefined>;

async function main(): Promise<void> {
  const [command, ...rest] = process.argv.slice(2);
  const { values } = parseArgs({
    args: rest,
    options: {
      url: { type: 'string' },
      host: { type: 'string' },
      port: { type: 'string' },
      count: { type: 'string' },
      'timeout-ms': { type: 'string' },
      'interval-ms': { type: 'string' },
    },
  });
  const opts: Options = values;
  switch (command) {
    case 'http-many':
      return print(await httpMany(required(opts, 'url'), int(opts, 'count', 50), int(opts, 'timeout-ms', 2000)));
    case 'download':
      return print(await download(required(opts, 'url'), int(opts, 'timeout-ms', 30_000)));
    case 'hold':
      return print(
        await hold(
          required(opts, 'host'),
          int(opts, 'port', 80),
          int(opts, 'count', 20),
          int(opts, 'interval-ms', 200),
          int(opts, 'timeout-ms', 2000),
        ),
      );
    case 'udp':
      return print(
        await udp(required(opts, 'host'), int(opts, 'port', 53), int(opts, 'count', 20), int(opts, 'timeout-ms', 2000)),
      );
    default:
      usage(`unknown command ${JSON.stringify(command)}`);
  }
}

// ---------------------------------------------------------------- http-many

async function httpMany(url: string, count: number, timeoutMs: number): Promise<HttpManyResult> {
  const result: HttpManyResult = { ok: 0, failed: 0, byBackend: {}, errors: [], samples: [], ms: 0 };
  const started = Date.now();
  for (let i = 0; i < count; i++) {
    try {
      const { status, body } = await getOnce(url, timeoutMs);
      if (status !== 200) throw new Error(`HTTP ${status}`);
      const reply = parseReply(body.toString('utf8'));
      result.ok++;
      countInto(result.byBackend, reply.backend);
      if (result.samples.length < MAX_SAMPLES) result.samples.push(reply);
    } catch (err) {
      result.failed++;
      if (result.errors.length < MAX_ERRORS) result.errors.push(`#${i}: ${message(err)}`);
    }
  }
  result.ms = Date.now() - started;
  return result;
}

/** One request on a fresh TCP connection (agent: false), so every request is a new flow. */
function getOnce(url: string, timeoutMs: number): Promise<{ status: number; body: Buffer }> {
  return new Promise((resolve, reject) => {
    const req = httpRequest(url, { agent: false, headers: { connection: 'close' } }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => {
        clearTimeout(timer);
        resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks) });
      });
      res.on('error', reject);
    });
    const timer = setTimeout(() => req.destroy(new Error(`no response within ${timeoutMs} ms`)), timeoutMs);
    req.on('error', (err) => {
      clearTimeout(timer);
      reject(err);
    });
    req.end();
  });
}

// ---------------------------------------------------------------- download

function download(url: string, timeoutMs: number): Promise<DownloadResult> {
  const started = Date.now();
  const result: DownloadResult = { ok: false, status: 0, bytes: 0, expected: -1, ms: 0 };
  return new Promise((resolve) => {
    const done = (error?: string): void => {
      clearTimeout(timer);
      result.ms = Date.now() - started;
      if (error !== undefined) result.error = error;
      result.ok = error === undefined && result.status === 200 && result.bytes === result.expected;
      resolve(result);
    };
    const req = httpRequest(url, { agent: false, headers: { connection: 'close' } }, (res: IncomingMessage) => {
      result.status = res.statusCode ?? 0;
      const len = res.headers['content-length'];
      if (len !== undefined) result.expected = Number(len);
      // Count without keeping the bytes: the payload is filler.
      res.on('data', (c: Buffer) => (result.bytes += c.length));
      res.on('end', () => done());
      res.on('error', (err) => done(message(err)));
    });
    const timer = setTimeout(() => req.destroy(new Error(`not done within ${timeoutMs} ms`)), timeoutMs);
    req.on('error', (err) => done(message(err)));
    req.end();
  });
}

// ---------------------------------------------------------------- hold

interface Held {
  id: number;
  socket: Socket;
  buf: Buffer;
  connected: boolean;
  /** A request is on the wire and its response has not arrived yet. */
  waiting: boolean;
  broken: boolean;
  /** The first request was answered, or the connection broke before that. */
  settled: boolean;
  backend?: string;
  timer?: NodeJS.Timeout;
}

/**
 * Holds `count` keep-alive connections, one request per interval on each, until told to
 * stop (SIGTERM, SIGUSR2, a "stop" line or EOF on stdin). Under DSR a load-balancer change
 * must not move or break an established flow: every deviation marks the connection broken.
 */
function hold(host: string, port: number, count: number, intervalMs: number, timeoutMs: number): Promise<HoldResult> {
  const request = Buffer.from(`GET / HTTP/1.1\r\nHost: ${host}\r\nConnection: keep-alive\r\n\r\n`);
  const result: HoldResult = { opened: 0, broken: 0, errors: [], requests: 0, byBackend: {} };
  const conns: Held[] = [];
  let stopping = false;
  let readyPrinted = false;
  let finish: (r: HoldResult) => void = () => {};
  const finished = new Promise<HoldResult>((resolve) => (finish = resolve));

  const brk = (c: Held, reason: string): void => {
    if (c.broken) return;
    c.broken = true;
    c.waiting = false;
    result.broken++;
    if (result.errors.length < MAX_ERRORS) result.errors.push(`conn ${c.id}: ${reason}`);
    clearTimeout(c.timer);
    c.socket.destroy();
    settleFirst(c);
    maybeFinish();
  };

  const settleFirst = (c: Held): void => {
    if (c.settled) return;
    c.settled = true;
    if (!readyPrinted && !stopping && conns.length === count && conns.every((x) => x.settled)) {
      readyPrinted = true;
      const ready: HoldReady = { event: 'ready', opened: result.opened, broken: result.broken, byBackend: result.byBackend };
      process.stdout.write(JSON.stringify(ready) + '\n');
    }
  };

  const send = (c: Held): void => {
    if (c.broken || stopping) return maybeFinish();
    c.waiting = true;
    c.socket.write(request);
    c.timer = setTimeout(() => brk(c, `no response within ${timeoutMs} ms`), timeoutMs);
  };

  const onResponse = (c: Held, status: number, body: Buffer): void => {
    clearTimeout(c.timer);
    if (!c.waiting) return brk(c, 'response without a request');
    c.waiting = false;
    result.requests++;
    if (status !== 200) return brk(c, `HTTP ${status}`);
    let reply: BackendReply;
    try {
      reply = parseReply(body.toString('utf8'));
    } catch (err) {
      return brk(c, message(err));
    }
    if (c.backend === undefined) {
      c.backend = reply.backend;
      countInto(result.byBackend, reply.backend);
      settleFirst(c);
    } else if (c.backend !== reply.backend) {
      return brk(c, `backend changed ${c.backend} -> ${reply.backend}`);
    }
    if (stopping) return maybeFinish();
    c.timer = setTimeout(() => send(c), intervalMs);
  };

  const open = (id: number): Held => {
    const socket = connect({ host, port });
    const c: Held = { id, socket, buf: Buffer.alloc(0), connected: false, waiting: false, broken: false, settled: false };
    c.timer = setTimeout(() => brk(c, `connect timeout after ${timeoutMs} ms`), timeoutMs);
    socket.on('connect', () => {
      clearTimeout(c.timer);
      c.connected = true;
      result.opened++;
      send(c);
    });
    socket.on('data', (chunk: Buffer) => {
      c.buf = Buffer.concat([c.buf, chunk]);
      try {
        for (let taken = takeResponse(c.buf); taken && !c.broken; taken = takeResponse(c.buf)) {
          c.buf = taken.rest;
          onResponse(c, taken.response.status, taken.response.body);
        }
      } catch (err) {
        brk(c, message(err));
      }
    });
    // ECONNRESET is the usual way a flow moved to the wrong backend ends.
    socket.on('error', (err: NodeJS.ErrnoException) => brk(c, err.code === 'ECONNRESET' ? 'reset' : message(err)));
    socket.on('close', () => brk(c, 'closed by peer')); // no-op after our own destroy (already broken or finished)
    return c;
  };

  let finishing = false;
  function maybeFinish(): void {
    if (!stopping || finishing) return;
    // Wait for in-flight requests (bounded by their timers) so a late break is still counted.
    if (conns.some((c) => !c.broken && (!c.connected || c.waiting))) return;
    finishing = true;
    for (const c of conns) {
      clearTimeout(c.timer);
      c.broken = true; // our own close below must not count as a break
      c.socket.destroy();
    }
    finish(result);
  }

  const stop = (): void => {
    if (stopping) return;
    stopping = true;
    for (const c of conns) if (!c.waiting && c.connected) clearTimeout(c.timer);
    maybeFinish();
  };
  process.on('SIGTERM', stop);
  process.on('SIGUSR2', stop);
  const lines = createInterface({ input: process.stdin });
  lines.on('line', (line) => line.trim() === 'stop' && stop());
  // EOF on stdin: whoever started us is gone; report and exit rather than run forever.
  lines.on('close', stop);

  for (let i = 0; i < count; i++) conns.push(open(i));
  return finished;
}

// ---------------------------------------------------------------- udp

/** Sends `count` datagrams from one socket; the socket is unconnected so that replies from
 *  any source address are seen and reported (a connected socket would drop wrong-source ones). */
function udp(host: string, port: number, count: number, timeoutMs: number): Promise<UdpResult> {
  const result: UdpResult = { sent: 0, received: 0, byBackend: {}, from: {}, errors: [], samples: [] };
  const sock = createSocket(host.includes(':') ? 'udp6' : 'udp4');
  return new Promise((resolve) => {
    let timer: NodeJS.Timeout | undefined;
    const done = (): void => {
      clearTimeout(timer);
      sock.close();
      resolve(result);
    };
    const error = (msg: string): void => {
      if (result.errors.length < MAX_ERRORS) result.errors.push(msg);
    };
    sock.on('message', (msg, rinfo) => {
      result.received++;
      countInto(result.from, `${rinfo.address}:${rinfo.port}`);
      try {
        const reply = parseReply(msg.toString('utf8'));
        countInto(result.byBackend, reply.backend);
        if (result.samples.length < MAX_SAMPLES) result.samples.push(reply);
      } catch (err) {
        error(`reply from ${rinfo.address}:${rinfo.port}: ${message(err)}`);
      }
      if (result.received >= count && result.sent === count) done();
    });
    sock.on('error', (err) => error(message(err)));
    sock.bind(0, () => {
      let seq = 0;
      const next = (): void => {
        if (seq === count) {
          timer = setTimeout(done, timeoutMs);
          return;
        }
        const payload = JSON.stringify({ seq });
        seq++;
        sock.send(payload, port, host, (err) => {
          if (err) error(`send: ${message(err)}`);
          else result.sent++;
          // A small gap keeps 20 datagrams from overrunning a just-learned switch or ARP queue.
          setTimeout(next, 5);
        });
      };
      next();
    });
  });
}

// ---------------------------------------------------------------- helpers

function parseReply(text: string): BackendReply {
  let v: unknown;
  try {
    v = JSON.parse(text);
  } catch {
    throw new Error(`not JSON: ${JSON.stringify(text.slice(0, 80))}`);
  }
  if (!isBackendReply(v)) throw new Error(`not a backend reply: ${text.slice(0, 80)}`);
  return v;
}

function message(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

function required(opts: Options, name: string): string {
  const v = opts[name];
  if (v === undefined || v === '') usage(`--${name} is required`);
  return v;
}

function int(opts: Options, name: string, dflt: number): number {
  const v = opts[name];
  if (v === undefined) return dflt;
  const n = Number(v);
  if (!Number.isInteger(n) || n < 0) usage(`--${name} wants a non-negative integer, got ${v}`);
  return n;
}

function print(result: unknown): void {
  // Exit explicitly once the line is out: lingering sockets or stdin must not keep us alive.
  process.stdout.write(JSON.stringify(result) + '\n', () => process.exit(0));
}

function usage(msg: string): never {
  process.stderr.write(
    `client: ${msg}\n` +
      'usage: client.js http-many|download|hold|udp [--url URL] [--host IP --port N] [--count N] [--timeout-ms N] [--interval-ms N]\n',
  );
  process.exit(2);
}

main().catch((err: unknown) => {
  process.stderr.write(`client: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
  process.exit(1);
});
