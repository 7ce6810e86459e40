// Minimal HTTP/1.1 response framing for the hold client, which drives raw sockets so that it
// sees exactly one TCP connection per "held" flow (an http.Agent could silently reconnect and
// hide a broken flow). Only Content-Length bodies: backend-server never sends chunked.

export interface HttpResponse {
  status: number;
  headers: Record<string, string>;
  body: Buffer;
}

const HEADER_END = Buffer.from('\r\n\r\n');
const MAX_HEADER_BYTES = 16 * 1024;

/**
 * Takes one complete response off the front of `buf`. Returns undefined while more bytes are
 * needed; throws when the bytes cannot be a response we understand.
 */
export function takeResponse(buf: Buffer): { response: HttpResponse; rest: Buffer } | undefined {
  const end = buf.indexOf(HEADER_END);
  if (end < 0) {
    if (buf.length > MAX_HEADER_BYTES) throw new Error('response header too long');
    return undefined;
  }
  const lines = buf.subarray(0, end).toString('latin1').split('\r\n');
  const statusMatch = /^HTTP\/1\.[01] ([0-9]{3})/.exec(lines[0] ?? '');
  if (!statusMatch || statusMatch[1] === undefined) {
    throw new Error(`bad status line ${JSON.stringify(lines[0])}`);
  }
  const headers: Record<string, string> = {};
  for (const line of lines.slice(1)) {
    const colon = line.indexOf(':');
    if (colon <= 0) throw new Error(`bad header line ${JSON.stringify(line)}`);
    headers[line.slice(0, colon).trim().toLowerCase()] = line.slice(colon + 1).trim();
  }
  if (headers['transfer-encoding'] !== undefined) {
    throw new Error(`unsupported transfer-encoding ${headers['transfer-encoding']}`);
  }
  const lengthText = headers['content-length'];
  if (lengthText === undefined || !/^[0-9]+$/.test(lengthText)) {
    throw new Error('response without a valid content-length');
  }
  const bodyStart = end + HEADER_END.length;
  const bodyEnd = bodyStart + Number(lengthText);
  if (buf.length < bodyEnd) return undefined;
  return {
    response: { status: Number(statusMatch[1]), headers, body: buf.subarray(bodyStart, bodyEnd) },
    rest: buf.subarray(bodyEnd),
  };
}
