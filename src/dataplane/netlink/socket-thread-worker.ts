/**
 * The thread of a netlink socket (socket-thread.ts): it opens a NETLINK_NETFILTER socket,
 * sends the datagrams it is given, in order, and passes every datagram received back. The
 * kernel applies a batch inside sendmsg(): here that runs beside the main thread's JavaScript.
 */
import { parentPort } from 'node:worker_threads';
import { RawNetlinkSocket } from 'netlink';

const NETLINK_NETFILTER = 12;
/** netlink_sendmsg() refuses a datagram longer than sk_sndbuf - 32. */
const SNDBUF_OVERHEAD = 32;

export type SocketThreadRequest = { kind: 'send'; id: number; datagram: Uint8Array } | { kind: 'close' };
export type SocketThreadReply =
  | { kind: 'ready'; portId: number; maxDatagramBytes: number; recvBufferBytes: number }
  | { kind: 'sent'; id: number; error: { message: string; code?: string } | null }
  | { kind: 'message'; datagram: Uint8Array; port: number }
  | { kind: 'error'; error: { message: string; code?: string } };

const port = parentPort!;
const post = (reply: SocketThreadReply, transfer: ArrayBuffer[] = []) => port.postMessage(reply, transfer);
const socket = new RawNetlinkSocket(NETLINK_NETFILTER, { sendBufferSize: 0x7fffffff, recvBufferSize: 0x7fffffff });
socket.on('message', (m: Buffer, rinfo: { port: number }) => {
  // Copied into a buffer of its own, so it can be transferred.
  const own = new Uint8Array(m.length);
  own.set(m);
  post({ kind: 'message', datagram: own, port: rinfo.port }, [own.buffer]);
});
socket.on('error', (err: Error & { code?: string }) => post({ kind: 'error', error: { message: err.message, code: err.code } }));
port.on('message', (request: SocketThreadRequest) => {
  if (request.kind === 'close') {
    socket.close();
    port.close();
    return;
  }
  socket.send(Buffer.from(request.datagram.buffer, request.datagram.byteOffset, request.datagram.byteLength), {}, (err?: Error & { code?: string }) =>
    post({ kind: 'sent', id: request.id, error: err ? { message: err.message, code: err.code } : null }),
  );
});
post({ kind: 'ready', portId: socket.address().port, maxDatagramBytes: socket.getSendBufferSize() - SNDBUF_OVERHEAD, recvBufferBytes: socket.getRecvBufferSize() });
