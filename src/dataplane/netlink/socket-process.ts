/**
 * A netlink transport whose socket lives in a helper process of its own
 * (socket-process-child.ts, in the same network namespace): the kernel's work inside
 * sendmsg() (about a second for the elements of a first load of 10,000 farms) then runs beside
 * this process's JavaScript instead of blocking it. A process, not a worker thread: an
 * exception escaping a callback of the netlink binding aborts the whole process it runs in
 * (a worker thread's takes the daemon down with it), and a failure here must only fail the
 * load, which then goes chunk by chunk in the daemon.
 */
import { fork, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { NetlinkTransport } from './nft-elements.js';
import type { SocketProcessReply, SocketProcessRequest } from './socket-process-child.js';

type Failure = Error & { code?: string };
const failure = (e: { message: string; code?: string }): Failure => Object.assign(new Error(e.message), e.code ? { code: e.code } : {});

export interface SocketProcessOptions {
  /** SO_RCVBUF to ask for (default: as much as net.core.rmem_max allows; tests ask for little). */
  recvBufferBytes?: number;
}

export async function openSocketProcess(options: SocketProcessOptions = {}): Promise<NetlinkTransport> {
  // Datagrams go through a file of their own, in memory where /dev/shm is (unlinked at once:
  // only the two open descriptors hold it): written here at growing offsets, read there at the
  // offset each request names. A pipe (or the IPC channel) moved them only when this event
  // loop was free, and the first load keeps it busy: the helper fell a second behind.
  const dir = fs.existsSync('/dev/shm') ? '/dev/shm' : os.tmpdir();
  const file = path.join(dir, `nftfarm-load-${process.pid}-${randomBytes(6).toString('hex')}`);
  const fd = fs.openSync(file, 'w+', 0o600);
  fs.unlinkSync(file);
  let offset = 0;
  let child: ChildProcess;
  try {
    child = fork(fileURLToPath(new URL('./socket-process-child.js', import.meta.url)), options.recvBufferBytes ? [String(options.recvBufferBytes)] : [], { execArgv: [], stdio: ['ignore', 'ignore', 'inherit', 'ipc', fd], serialization: 'advanced' });
  } catch (err) {
    fs.closeSync(fd);
    throw err;
  }
  const request = (r: SocketProcessRequest) => {
    if (child.connected) child.send(r);
  };
  const ready = await new Promise<Extract<SocketProcessReply, { kind: 'ready' }>>((resolve, reject) => {
    child.once('error', reject);
    child.once('exit', (code, signal) => reject(new Error(`the netlink helper process ended (${signal ?? code}) before it was ready`)));
    child.once('message', (r: SocketProcessReply) => (r.kind === 'ready' ? resolve(r) : reject(new Error(`unexpected first message ${r.kind}`))));
  }).catch((err: unknown) => {
    child.kill('SIGKILL');
    fs.closeSync(fd);
    throw err;
  });
  child.removeAllListeners('error');
  child.removeAllListeners('exit');
  child.unref();
  child.channel?.unref();
  let nextId = 1;
  const sending = new Map<number, (err?: Failure) => void>();
  let onMessage: (datagram: Buffer, port: number) => void = () => {};
  let onError: (err: Failure) => void = () => {};
  let closed = false;
  child.on('message', (r: SocketProcessReply) => {
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
  child.on('error', (err) => lost(Object.assign(err, { code: 'ECONNRESET' })));
  child.on('exit', (code, signal) => {
    if (!closed) lost(Object.assign(new Error(`the netlink helper process ended (${signal ?? code})`), { code: 'ECONNRESET' }));
  });
  return {
    portId: ready.portId,
    maxDatagramBytes: ready.maxDatagramBytes,
    recvBufferBytes: ready.recvBufferBytes,
    send(datagram, done) {
      const id = nextId++;
      sending.set(id, done);
      try {
        fs.writeSync(fd, datagram, 0, datagram.length, offset);
      } catch (err) {
        sending.delete(id);
        done(Object.assign(err as Error, { code: (err as Failure).code ?? 'EIO' }));
        return;
      }
      request({ kind: 'send', id, offset, length: datagram.length });
      offset += datagram.length;
    },
    onMessage: (handler) => (onMessage = handler),
    onError: (handler) => (onError = handler),
    hold: (held) => {
      if (held) {
        child.ref();
        child.channel?.ref();
      } else {
        child.unref();
        child.channel?.unref();
      }
    },
    close() {
      if (closed) return;
      closed = true;
      // The helper closes its socket once its sends are done, and ends.
      request({ kind: 'close' });
      fs.closeSync(fd);
    },
  };
}
