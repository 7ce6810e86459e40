/**
 * Counts the connections conntrack tracks per connection mark, with one ctnetlink dump over
 * a netlink socket (no `conntrack -L` process, no text to parse). nat and dnat farms mark
 * each connection with its backend, so this is every backend's connection count, for
 * leastconn, max_conns and the statistics. Connections that are closing (TCP FIN_WAIT,
 * CLOSE_WAIT, LAST_ACK, TIME_WAIT, CLOSE) hold no backend capacity and are not counted.
 */
import { createNetlink, type NetlinkSocket } from 'netlink';
import { netlinkErrorCode } from './errors.js';

const NETLINK_NETFILTER = 12;
const NFNL_SUBSYS_CTNETLINK = 1;
const IPCTNL_MSG_CT_GET = 1;
const NLM_F_DUMP = 0x300;
/** Both families: IPv4 and IPv6 farms mark their connections alike (issue 13). */
const AF_UNSPEC = 0;
// include/uapi/linux/netfilter/nfnetlink_conntrack.h
const CTA_PROTOINFO = 4;
const CTA_MARK = 8;
const CTA_PROTOINFO_TCP = 1;
const CTA_PROTOINFO_TCP_STATE = 1;
/** enum tcp_conntrack: FIN_WAIT 4, CLOSE_WAIT 5, LAST_ACK 6, TIME_WAIT 7, CLOSE 8. */
const CLOSING_TCP_STATES = new Set([4, 5, 6, 7, 8]);

export interface ConnectionCounter {
  /** Tracked connections per non-zero mark (IPv4 and IPv6), closing TCP connections left out. */
  countByMark(): Promise<Map<number, number>>;
  close(): void;
}

export function openConnectionCounter(): ConnectionCounter {
  let socket: NetlinkSocket | null = null;
  let queue: Promise<unknown> = Promise.resolve();
  return {
    countByMark() {
      // One dump at a time on the socket: a second request while one is in progress is
      // refused with EBUSY (the observer's sample and a leastconn count can meet).
      const run = queue.then(dump);
      queue = run.catch(() => undefined);
      return run;
    },
    close() {
      socket?.socket.close();
      socket = null;
    },
  };

  async function dump(): Promise<Map<number, number>> {
    // Large buffers: the kernel fills each dump chunk up to the reader's buffer.
    socket ??= createNetlink(NETLINK_NETFILTER, { messagePeeking: false, msgBufferSize: 64 * 1024, recvBufferSize: 4 << 20, sendBufferSize: 64 * 1024 });
    const counts = new Map<number, number>();
    let messages;
    try {
      [messages] = await socket.request((NFNL_SUBSYS_CTNETLINK << 8) | IPCTNL_MSG_CT_GET, Buffer.from([AF_UNSPEC, 0, 0, 0]), { flags: NLM_F_DUMP, timeout: 30_000 });
    } catch (err) {
      // No conntrack module loaded yet: nothing is tracked.
      if (netlinkErrorCode(err) === 'ENOENT') return counts;
      throw err;
    }
    for (const m of messages) {
      const body = Buffer.from(m.data.buffer, m.data.byteOffset, m.data.byteLength).subarray(4);
      const attrs = attributes(body);
      const mark = attrs.get(CTA_MARK)?.readUInt32BE(0) ?? 0;
      if (mark === 0) continue;
      const proto = attrs.get(CTA_PROTOINFO);
      const tcp = proto && attributes(proto).get(CTA_PROTOINFO_TCP);
      const state = tcp && attributes(tcp).get(CTA_PROTOINFO_TCP_STATE);
      if (state && CLOSING_TCP_STATES.has(state[0]!)) continue;
      counts.set(mark, (counts.get(mark) ?? 0) + 1);
    }
    return counts;
  }
}

/** Netlink attributes: u16 length (header included), u16 type, value padded to 4 bytes. */
function attributes(data: Buffer): Map<number, Buffer> {
  const out = new Map<number, Buffer>();
  let offset = 0;
  while (offset + 4 <= data.length) {
    const length = data.readUInt16LE(offset);
    if (length < 4) break;
    // The top bits are the nested/byte-order flags, not part of the type.
    out.set(data.readUInt16LE(offset + 2) & 0x3fff, data.subarray(offset + 4, offset + length));
    offset += (length + 3) & ~3;
  }
  return out;
}
