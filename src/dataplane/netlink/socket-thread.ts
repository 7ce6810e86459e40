/**
 * A netlink transport whose socket lives in a thread of its own (socket-thread-worker.ts):
 * the kernel's work inside sendmsg() (seconds for the elements of a first load of 10,000
 * farms) then runs beside this thread's JavaScript instead of blocking it.
 */
import { Worker } from 'node:worker_threads';
import type { NetlinkTransport } from './nft-elements.js';
import type { SocketThreadReply, SocketThreadRequest } from './socket-thread-worker.js';

type Failure = Error & { code?: string };
const failure = (e: { message: string; code?: string }): Failure => Object.assign(new Error(e.message), e.code ? { code: e.code } : {});

export async function openSocketThread(): Promise<NetlinkTransport> {
  const worker = new Worker(new URL('./socket-thread-worker.js', import.meta.url));
  worker.unref();
  const request = (r: SocketThreadRequest, transfer: ArrayBuffer[] = []) => worker.postMessage(r, transfer);
  const ready = await new Promise<Extract<SocketThreadReply, { kind: 'ready' }>>((resolve, reject) => {
    worker.once('error', reject);
    worker.once('exit', (code) => reject(new Error(`the netlink socket thread ended (${code}) before it was ready`)));
    worker.once('message', (r: SocketThreadReply) => (r.kind === 'ready' ? resolve(r) : reject(new Error(`unexpected first message ${r.kind}`))));
  });
  worker.removeAllListeners('error');
  worker.removeAllListeners('exit');
  let nextId = 1;
  const sending = new Map<number, (err?: Failure) => void>();
  let onMessage: (datagram: Buffer, port: number) => void = () => {};
  let onError: (err: Failure) => void = () => {};
  let closed = false;
  worker.on('message', (r: SocketThreadReply) => {
    if (r.kind === 'message') onMessage(Buffer.from(r.datagram.buffer, r.datagram.byteOffset, r.datagram.byteLength), r.port);
    else if (r.kind === 'sent') {
      const done = sending.get(r.id);
      sending.delete(r.id);
      done?.(r.error ? failure(r.error) : undefined);
    } else if (r.kind === 'error') onError(failure(r.error));
  });
  const lost = (err: Failure) => {
    for (const done of sending.values()) done(err);
    sending.clear();
    onError(err);
  };
  worker.on('error', (err) => lost(Object.assign(err, { code: 'ECONNRESET' })));
  worker.on('exit', () => {
    if (!closed) lost(Object.assign(new Error('the netlink socket thread ended'), { code: 'ECONNRESET' }));
  });
  return {
    portId: ready.portId,
    maxDatagramBytes: ready.maxDatagramBytes,
    recvBufferBytes: ready.recvBufferBytes,
    send(datagram, done) {
      const id = nextId++;
      sending.set(id, done);
      request({ kind: 'send', id, datagram });
    },
    onMessage: (handler) => (onMessage = handler),
    onError: (handler) => (onError = handler),
    hold: (held) => (held ? worker.ref() : worker.unref()),
    close() {
      if (closed) return;
      closed = true;
      request({ kind: 'close' });
    },
  };
}
