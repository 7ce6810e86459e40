/**
 * Raw HTTP/1.1 over a socket: for requests that fetch and curl will not send (unknown
 * methods, broken percent-encoding, oversized request lines, half-sent headers), so tests see
 * exactly what the server writes on the wire.
 */
import net from 'node:net';
import tls from 'node:tls';

export interface RawAnswer {
  /** 0 when the server closed without an answer. */
  status: number;
  headers: Record<string, string>;
  text: string;
  /** The body parsed as JSON, or undefined when it is not JSON. */
  json: unknown;
}

export interface RawOptions {
  /** Give up (and report status 0) after this long; default 10 s. */
  timeoutMs?: number;
  /** Connect with TLS (certificates not verified). */
  tls?: boolean;
}

/** Sends `request` verbatim and reads until the server closes or one full answer has arrived. */
export function rawRequest(host: string, port: number, request: string | Buffer, options: RawOptions = {}): Promise<RawAnswer> {
  return new Promise((resolve) => {
    const socket = options.tls ? tls.connect({ host, port, rejectUnauthorized: false }) : net.connect({ host, port });
    const chunks: Buffer[] = [];
    let done = false;
    const finish = () => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      socket.destroy();
      resolve(parseAnswer(Buffer.concat(chunks).toString('utf8')));
    };
    const timer = setTimeout(finish, options.timeoutMs ?? 10_000);
    socket.on(options.tls ? 'secureConnect' : 'connect', () => socket.write(request));
    socket.on('data', (d: Buffer) => {
      chunks.push(d);
      if (complete(Buffer.concat(chunks).toString('utf8'))) finish();
    });
    socket.on('error', finish);
    socket.on('close', finish);
  });
}

/** True once the head and a Content-Length body (or a chunked body's end) are in. */
function complete(text: string): boolean {
  const end = text.indexOf('\r\n\r\n');
  if (end < 0) return false;
  const head = text.slice(0, end);
  const length = /\r\ncontent-length:\s*(\d+)/i.exec(head);
  if (length) return Buffer.byteLength(text.slice(end + 4)) >= Number(length[1]);
  if (/\r\ntransfer-encoding:\s*chunked/i.test(head)) return text.endsWith('0\r\n\r\n');
  return false;
}

export function parseAnswer(text: string): RawAnswer {
  const end = text.indexOf('\r\n\r\n');
  if (!text.startsWith('HTTP/')) return { status: 0, headers: {}, text, json: undefined };
  const [statusLine, ...lines] = text.slice(0, end < 0 ? text.length : end).split('\r\n');
  const headers: Record<string, string> = {};
  for (const line of lines) {
    const colon = line.indexOf(':');
    if (colon > 0) headers[line.slice(0, colon).toLowerCase()] = line.slice(colon + 1).trim();
  }
  let body = end < 0 ? '' : text.slice(end + 4);
  if (/chunked/i.test(headers['transfer-encoding'] ?? '')) body = dechunk(body);
  let json: unknown;
  try {
    json = JSON.parse(body);
  } catch {
    json = undefined;
  }
  return { status: Number(statusLine?.split(' ')[1] ?? 0), headers, text: body, json };
}

function dechunk(body: string): string {
  let out = '';
  let rest = body;
  for (;;) {
    const eol = rest.indexOf('\r\n');
    if (eol < 0) return out;
    const size = parseInt(rest.slice(0, eol), 16);
    if (!size) return out;
    out += rest.slice(eol + 2, eol + 2 + size);
    rest = rest.slice(eol + 2 + size + 2);
  }
}

/** Is `body` ZAPI's error envelope: exactly description, error "true", message (and optional params)? */
export function isZapiErrorEnvelope(body: unknown): boolean {
  if (body === null || typeof body !== 'object' || Array.isArray(body)) return false;
  const b = body as Record<string, unknown>;
  // `problems`: the list of every problem, where one request can have several (BGP settings, configuration documents).
  if ('problems' in b && !(Array.isArray(b.problems) && b.problems.length > 0 && b.problems.every((p) => typeof p === 'string'))) return false;
  const keys = Object.keys(b).filter((k) => k !== 'params' && k !== 'problems');
  return (
    keys.length === 3 &&
    typeof b.description === 'string' &&
    b.error === 'true' &&
    typeof b.message === 'string' &&
    b.message.length > 0
  );
}

/** The documented ZEVENET 401 body. */
export const isUnauthorizedBody = (body: unknown): boolean =>
  body !== null && typeof body === 'object' && JSON.stringify(body) === '{"message":"Authorization required"}';
