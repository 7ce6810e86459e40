/**
 * The helper process of a netlink socket (socket-process.ts): it opens a NETLINK_NETFILTER
 * socket, sends the datagrams it is given, in order, and passes every datagram received back.
 * The kernel applies a batch inside sendmsg(): here that runs beside the daemon's JavaScript.
 * It ends when the daemon closes the channel (or dies).
 *
 * The kernel queues all of a batch's replies before sendmsg() returns, and one that does not
 * fit the receive buffer aborts this process (nft-elements.ts, MESSAGE_MAX_BYTES). The daemon
 * sends batches without waiting for answers, so this process holds each batch back until the
 * replies it could draw, added to those of the batches still unread, fit the buffer: it reads
 * a batch's replies to their end (the ack of its last message that asks for one) before that
 * batch's share is free again.
 */
import fs from 'node:fs';
import os from 'node:os';
import { NLM_F_ACK, NLMSG_ERROR, NLMSG_HDRLEN, openNetfilterTransport, seqInRange, worstReplyBytes } from './nft-elements.js';

/** Over IPC; a datagram's bytes are in the file at fd 4, at `offset` (see socket-process.ts). */
export type SocketProcessRequest = { kind: 'send'; id: number; offset: number; length: number } | { kind: 'close' };
export type SocketProcessReply =
  | { kind: 'ready'; portId: number; maxDatagramBytes: number; recvBufferBytes: number }
  | { kind: 'sent'; id: number; error: { message: string; code?: string } | null }
  | { kind: 'message'; datagram: Uint8Array; port: number }
  | { kind: 'error'; error: { message: string; code?: string } };

const errorOf = (err: unknown) => ({ message: (err as Error)?.message ?? String(err), code: (err as { code?: string })?.code });
/** Sends to the daemon, never throwing (the binding's callbacks must not throw). */
const post = (reply: SocketProcessReply) => {
  try {
    if (process.connected) process.send!(reply);
  } catch {
    // The daemon is gone or closing: nothing to tell.
  }
};
// argv[2]: the receive buffer to ask for (tests make it small); default as large as allowed.
const socket = openNetfilterTransport({ recvBufferBytes: Number(process.argv[2]) || undefined });
// Kept alive by the IPC channel and by the socket while sends are under way (closeWhenIdle).
socket.hold(true);
const { recvBufferBytes } = socket;

/** A datagram to send, and what of its replies tells that they have all been read. */
interface Outgoing {
  id: number;
  datagram: Buffer;
  /** Receive buffer its replies could take (worstReplyBytes). */
  replyBytes: number;
  firstSeq: number;
  lastSeq: number;
  /** The last reply: the ack of the last message that asks for one, else any answer to it. */
  finalSeq: number;
  finalIsAck: boolean;
}
/** Sent, and replies not all read yet (in order: the kernel answers a batch before the next). */
const unread: Outgoing[] = [];
let unreadReplyBytes = 0;
const waiting: Outgoing[] = [];

const outgoing = (id: number, datagram: Buffer): Outgoing => {
  let firstSeq = 0;
  let lastSeq = 0;
  let finalSeq = -1;
  for (let at = 0; at + NLMSG_HDRLEN <= datagram.length; ) {
    const len = datagram.readUInt32LE(at);
    if (len < NLMSG_HDRLEN) break;
    const seq = datagram.readUInt32LE(at + 8);
    if (at === 0) firstSeq = seq;
    lastSeq = seq;
    if (datagram.readUInt16LE(at + 6) & NLM_F_ACK) finalSeq = seq;
    at += (len + 3) & ~3;
  }
  const finalIsAck = finalSeq !== -1;
  return { id, datagram, replyBytes: worstReplyBytes(datagram), firstSeq, lastSeq, finalSeq: finalIsAck ? finalSeq : firstSeq, finalIsAck };
};

/** Sends what waits, in order, while its replies fit beside those unread. */
const pump = () => {
  while (waiting.length > 0) {
    const next = waiting[0] as Outgoing;
    if (unread.length > 0 && unreadReplyBytes + next.replyBytes > recvBufferBytes) return;
    waiting.shift();
    unread.push(next);
    unreadReplyBytes += next.replyBytes;
    send(next);
  }
};
const read = (o: Outgoing) => {
  const i = unread.indexOf(o);
  if (i === -1) return;
  unread.splice(i, 1);
  unreadReplyBytes -= o.replyBytes;
  pump();
};
/** Frees a batch's share once its last reply is read (or one that ends its answers early). */
const noteReplies = (datagram: Buffer) => {
  for (let at = 0; at + NLMSG_HDRLEN <= datagram.length; ) {
    const len = datagram.readUInt32LE(at);
    if (len < NLMSG_HDRLEN || at + len > datagram.length) break;
    const type = datagram.readUInt16LE(at + 4);
    const seq = datagram.readUInt32LE(at + 8);
    const o = unread.find((u) => seqInRange(seq, u.firstSeq, u.lastSeq));
    if (o) {
      const errno = type === NLMSG_ERROR && len >= NLMSG_HDRLEN + 4 ? -datagram.readInt32LE(at + NLMSG_HDRLEN) : 0;
      // As the writer reads them: an error on the first message (the batch refused as a
      // whole) or ENOMEM (the kernel drops the other replies) is the batch's last answer.
      if ((seq === o.finalSeq && (!o.finalIsAck || type === NLMSG_ERROR)) || (errno !== 0 && (seq === o.firstSeq || errno === os.constants.errno.ENOMEM))) read(o);
    }
    at += (len + 3) & ~3;
  }
};

socket.onMessage((m, port) => {
  post({ kind: 'message', datagram: m, port });
  if (port === 0) {
    try {
      noteReplies(m);
    } catch (err) {
      post({ kind: 'error', error: errorOf(err) });
    }
  }
});
socket.onError((err) => post({ kind: 'error', error: errorOf(err) }));

// Closed once every send has had its callback: the binding runs completions from a timer,
// and nothing of it may be left to run while the process ends.
let sending = 0;
let closing = false;
// The daemon gone (its channel closed): nothing left to do.
process.on('disconnect', () => {
  waiting.length = 0;
  closing = true;
  closeWhenIdle();
});
const closeWhenIdle = () => {
  if (!closing || sending > 0) return;
  closing = false;
  socket.close();
  setImmediate(() => {
    if (process.connected) process.disconnect();
  });
};
const send = (o: Outgoing) => {
  const { id, datagram } = o;
  sending++;
  const done = (error: { message: string; code?: string } | null) => {
    sending--;
    post({ kind: 'sent', id, error });
    // Not sent: no replies will come.
    if (error) read(o);
    closeWhenIdle();
  };
  try {
    socket.send(datagram, (err) => {
      try {
        done(err ? errorOf(err) : null);
      } catch {
        // See post().
      }
    });
  } catch (err) {
    done(errorOf(err));
  }
};
/** The file the daemon writes the datagrams into. */
const DATAGRAMS_FD = 4;
process.on('message', (request: SocketProcessRequest) => {
  if (request.kind === 'close') {
    // The daemon has all it waited for; anything still held back was given up (it may be
    // removing the load's tables), so it is not sent.
    waiting.length = 0;
    closing = true;
    closeWhenIdle();
    return;
  }
  let datagram: Buffer;
  try {
    datagram = Buffer.allocUnsafe(request.length);
    fs.readSync(DATAGRAMS_FD, datagram, 0, request.length, request.offset);
  } catch (err) {
    post({ kind: 'sent', id: request.id, error: errorOf(err) });
    return;
  }
  try {
    waiting.push(outgoing(request.id, datagram));
    pump();
  } catch (err) {
    post({ kind: 'sent', id: request.id, error: errorOf(err) });
  }
});
post({ kind: 'ready', portId: socket.portId, maxDatagramBytes: socket.maxDatagramBytes, recvBufferBytes });
