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
const errorOf = (err: unknown) => ({ message: (err as Error)?.message ?? String(err), code: (err as { code?: string })?.code });
/**
 * Posts to the main thread, never throwing: an exception that escapes a callback of the
 * netlink binding (a native callback) aborts the whole process, not only this thread.
 */
const post = (reply: SocketThreadReply, transfer: ArrayBuffer[] = []) => {
  try {
    port.postMessage(reply, transfer);
  } catch {
    // The main thread is gone or closing: nothing to tell.
  }
};
const socket = new RawNetlinkSocket(NETLINK_NETFILTER, { sendBufferSize: 0x7fffffff, recvBufferSize: 0x7fffffff });
socket.on('message', (m: Buffer, rinfo: { port: number }) => {
  try {
    // Copied into a buffer of its own, so it can be transferred.
    const own = new Uint8Array(m.length);
    own.set(m);
    post({ kind: 'message', datagram: own, port: rinfo.port }, [own.buffer]);
  } catch (err) {
    post({ kind: 'error', error: errorOf(err) });
  }
});
socket.on('error', (err: Error & { code?: string }) => post({ kind: 'error', error: errorOf(err) }));

// Closed once every send has had its callback: the binding runs completions from a timer,
// and nothing of it may be left to run while the thread ends.
let sending = 0;
let closing = false;
const closeWhenIdle = () => {
  if (!closing || sending > 0) return;
  closing = false;
  socket.close();
  setImmediate(() => port.close());
};
port.on('message', (request: SocketThreadRequest) => {
  if (request.kind === 'close') {
    closing = true;
    closeWhenIdle();
    return;
  }
  sending++;
  const done = (error: { message: string; code?: string } | null) => {
    sending--;
    post({ kind: 'sent', id: request.id, error });
    closeWhenIdle();
  };
  try {
    socket.send(Buffer.from(request.datagram.buffer, request.datagram.byteOffset, request.datagram.byteLength), {}, (err?: Error & { code?: string }) => {
      try {
        done(err ? errorOf(err) : null);
      } catch {
        // See post().
      }
    });
  } catch (err) {
    done(errorOf(err));
  }
});
post({ kind: 'ready', portId: socket.address().port, maxDatagramBytes: socket.getSendBufferSize() - SNDBUF_OVERHEAD, recvBufferBytes: socket.getRecvBufferSize() });
