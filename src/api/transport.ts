/**
 * The socket side of the HTTP server, so that refusals reach the client as answers:
 *
 * - Lingering close: when a request is answered before its body has arrived (an unknown
 *   route, a missing key, a body over the limit) and the connection is to close, Node closes
 *   the socket as soon as the answer is flushed; the client's next bytes then hit a closed
 *   socket, the kernel answers RST, and a client that is still sending loses the answer from
 *   its receive buffer. Here the socket half-closes and keeps reading (and discarding) until
 *   the client closes its side, for LINGER_MS at most.
 * - CONNECT requests: Node hands them to a 'connect' listener or drops the connection
 *   silently; here they get the envelope.
 * - Parser errors (the 'clientError' event) are answered on the raw socket the same way.
 */
import type { Server } from 'node:http';
import type { Socket } from 'node:net';
import { clientErrorKind, rawErrorResponse, transportError, type ZapiError } from './zapi.js';

export const LINGER_MS = 2000;

/** Ends the socket (after `last`, if given), then reads and discards until the client closes, or LINGER_MS. */
export function endLingering(socket: Socket, last?: string): void {
  if (socket.destroyed) return;
  const destroy = () => socket.destroy();
  if (socket.writable) {
    if (last === undefined) socket.end();
    else socket.end(last);
  }
  socket.once('end', destroy);
  socket.once('error', destroy);
  setTimeout(destroy, LINGER_MS).unref();
}

/** Answers a request no reply object owns, in the envelope, and closes lingering. */
export function refuseOnSocket(socket: Socket, zapi: ZapiError): void {
  // Nothing more is parsed on this connection: the bytes still coming are discarded.
  socket.removeAllListeners('data');
  socket.on('data', () => {});
  socket.resume();
  endLingering(socket, rawErrorResponse(zapi));
}

/** The 'clientError' handler (Fastify's clientErrorHandler option). */
export function onClientError(error: Error, socket: Socket): void {
  const code = (error as NodeJS.ErrnoException).code;
  if (code === 'ECONNRESET' || socket.destroyed || !socket.writable) {
    socket.destroy();
    return;
  }
  refuseOnSocket(socket, transportError(clientErrorKind(code)));
}

/** Installs the lingering close and the CONNECT answer on a server (HTTP or HTTPS). */
export function hardenSockets(server: Server): void {
  const linger = (socket: Socket) => {
    // Node's http server ends a 'Connection: close' exchange with socket.destroySoon().
    socket.destroySoon = () => endLingering(socket);
  };
  server.on('connection', linger);
  server.on('secureConnection', linger);
  server.on('connect', (_req, socket: Socket) => refuseOnSocket(socket, transportError('bad-method')));
}
