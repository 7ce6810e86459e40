/**
 * A long-lived writer of nftables set and map elements over raw netlink: one socket, and each
 * commit is ONE nfnetlink batch in ONE sendmsg, which the kernel applies whole or not at all.
 * Small everyday changes (a few map elements) then cost a few hundred microseconds instead of
 * an `nft` process (15-30 ms: start-up, the cache of a large ruleset, and the wait when its
 * socket closes).
 *
 * Scope: elements only (add, delete, flush one set). Tables, chains, sets and rules stay with
 * `nft -f`, and so does any batch larger than one datagram (maxBatchBytes): commit() refuses
 * it before sending anything, and the caller falls back to `nft -f`.
 *
 * Elements are encoded byte for byte as nft 1.0.6 sends them for the same `add element`,
 * `delete element` and `flush set` commands (test/netns/nft-elements.test.ts compares them
 * with strace). The messages differ in three ways: each asks for an ACK; nft also names the
 * set by NFTA_SET_ELEM_LIST_SET_ID (for a set created in the same batch: never the case
 * here); and messages are split at 32 KB where nft fills them to 64 KB (MESSAGE_MAX_BYTES).
 *
 * Kernel facts this module relies on (checked on 6.18 with the tests):
 * - Netlink to the kernel is synchronous: the whole batch is processed, committed or aborted,
 *   and every reply is queued on our socket before sendmsg() returns. A huge batch therefore
 *   blocks the event loop for the kernel's work (measured in bench/nft-elements.mjs).
 * - nfnetlink processes every message of a failed batch (each error is reported), then
 *   aborts; replies come in message order after the commit or abort.
 * - The kernel bumps the ruleset generation only when a batch changes something; it sends
 *   NFT_MSG_NEWGEN to us only if the FIRST message after BATCH_BEGIN carries NLM_F_ECHO (the
 *   flag on BATCH_BEGIN itself is ignored). NLM_F_ECHO on an element message would also echo
 *   one notification per element, so each batch starts with a no-op marker message instead:
 *   NFT_MSG_NEWTABLE naming an existing table without NFTA_TABLE_FLAGS changes nothing, adds
 *   nothing to the transaction and notifies nothing. (Were the table missing, it would be
 *   created, but the batch's operations on that table then fail and the abort undoes it.)
 */
import os from 'node:os';
import { isIPv6 } from 'node:net';
import { RawNetlinkSocket } from 'netlink';
import { HostNetworkError, type HostNetworkErrorKind } from './errors.js';
import { parseIPv4 } from './ipv4.js';

const NETLINK_NETFILTER = 12;
const NFNL_SUBSYS_NFTABLES = 10;

// include/uapi/linux/netlink.h
export const NLMSG_ERROR = 2;
const NLM_F_REQUEST = 0x1;
export const NLM_F_ACK = 0x4;
const NLM_F_ECHO = 0x8;
const NLM_F_CREATE = 0x400;
const NLM_F_APPEND = 0x800;
const NLA_F_NESTED = 0x8000;
export const NLMSG_HDRLEN = 16;
/** nlmsghdr + struct nfgenmsg (family u8, version u8, res_id be16). */
const NFNL_HDRLEN = NLMSG_HDRLEN + 4;

// include/uapi/linux/netfilter/nfnetlink.h
const NFNL_MSG_BATCH_BEGIN = 0x10;
const NFNL_MSG_BATCH_END = 0x11;
/** BATCH_BEGIN attribute: commit only if the ruleset generation is still this one (else ERESTART). */
const NFNL_BATCH_GENID = 1;

// include/uapi/linux/netfilter/nf_tables.h
const NFT_MSG_NEWTABLE = 0;
const NFT_MSG_NEWCHAIN = 3;
const NFT_MSG_NEWRULE = 6;
const NFT_MSG_NEWSETELEM = 12;
const NFT_MSG_DELSETELEM = 14;
const NFT_MSG_NEWGEN = 15;
const NFT_MSG_GETGEN = 16;
const NFTA_TABLE_NAME = 1;
const NFTA_CHAIN_TABLE = 1;
const NFTA_CHAIN_NAME = 3;
const NFTA_RULE_TABLE = 1;
const NFTA_RULE_CHAIN = 2;
const NFTA_RULE_EXPRESSIONS = 4;
const NFTA_LIST_ELEM = 1;
const NFTA_EXPR_NAME = 1;
const NFTA_EXPR_DATA = 2;
const NFTA_SET_ELEM_LIST_TABLE = 1;
const NFTA_SET_ELEM_LIST_SET = 2;
const NFTA_SET_ELEM_LIST_ELEMENTS = 3;
const NFTA_SET_ELEM_KEY = 1;
const NFTA_SET_ELEM_DATA = 2;
const NFTA_SET_ELEM_TIMEOUT = 4;
const NFTA_SET_ELEM_KEY_END = 10;
const NFTA_DATA_VALUE = 1;
const NFTA_DATA_VERDICT = 2;
const NFTA_VERDICT_CODE = 1;
const NFTA_VERDICT_CHAIN = 2;
const NFTA_GEN_ID = 1;
/** NFT_DATA_VALUE_MAXLEN: a key or a data value is at most 16 registers of 4 bytes. */
const VALUE_MAX_BYTES = 64;
/**
 * netlink_sendmsg() refuses (EMSGSIZE) a datagram longer than sk_sndbuf - 32. SO_SNDBUF
 * stores twice the value asked for, capped at net.core.wmem_max; SO_SNDBUFFORCE (root) would
 * pass the cap but the npm package cannot set it, and host sysctls are not ours to change.
 */
const SNDBUF_OVERHEAD = 32;
/**
 * Replies must never overflow our receive queue. The kernel queues every reply of a batch
 * before sendmsg() returns; when one does not fit (or its allocation fails) it sets the
 * socket's error, poll() reports POLLERR, libuv hands the `netlink` 0.3.0 binding UV_EBADF,
 * and the binding's poll handler throws from C++ (an ErrnoException with a NULL syscall
 * name): the whole process aborts. A failed message's error reply echoes the whole message,
 * in an skb whose size the allocator rounds up to a power of two (a 65 KB message costs
 * 128 KB of receive buffer), so:
 * - messages stay under 32 KB, so that an echo fits an order-3 (32 KB) allocation, which the
 *   kernel does not give up on (nft fills messages up to the 64 KB an attribute can hold);
 * - a batch is refused when the replies it could draw if every message failed exceed the
 *   receive buffer (worstReplyBytes).
 */
const MESSAGE_MAX_BYTES = 32 * 1024 - 512;
/** Kernel bytes around a reply's payload: nlmsghdr, nlmsgerr, skb_shared_info (allocation), struct sk_buff (truesize). */
const REPLY_ALLOC_OVERHEAD = 512;
const REPLY_SKB_OVERHEAD = 512;
/** NFT_MSG_NEWGEN is allocated at NLMSG_GOODSIZE (a page); room for it and some slack. */
const REPLY_FIXED_BYTES = 16 * 1024;
const pow2ceil = (n: number): number => 2 ** Math.ceil(Math.log2(n));
/** Receive buffer an error reply to a message of this length can take. */
const worstReply = (messageBytes: number): number => pow2ceil(messageBytes + REPLY_ALLOC_OVERHEAD) + REPLY_SKB_OVERHEAD;

const NFT_VERDICT_CODES = { drop: 0, accept: 1, continue: -1, return: -5, jump: -3, goto: -4 } as const;

/** nfgenmsg.nfgen_family of each nft table family. */
const FAMILY_NUMBERS = { inet: 1, ip: 2, arp: 3, netdev: 5, bridge: 7, ip6: 10 } as const;
export type NftFamily = keyof typeof FAMILY_NUMBERS;

// ---------------------------------------------------------------------------------------
// Values: nft types -> the bytes the kernel stores.

export type NftScalarType = 'mark' | 'ipv4_addr' | 'ipv6_addr' | 'ether_addr' | 'inet_service' | 'inet_proto';
/**
 * One type, or a concatenation (`ipv4_addr . inet_proto . inet_service` is three). `mark` also
 * serves the other 32-bit host-order integers (a map `typeof numgen inc mod N : meta mark`).
 */
export type NftType = NftScalarType | readonly NftScalarType[];
/** mark, inet_service: number; inet_proto: number or name (tcp...); addresses: text. */
export type NftScalar = number | string;
export type NftValue = NftScalar | readonly NftScalar[];

export type NftVerdict = { verdict: 'accept' | 'drop' | 'continue' | 'return' } | { verdict: 'jump' | 'goto'; chain: string };

const PROTOCOLS: Record<string, number> = { icmp: 1, igmp: 2, tcp: 6, udp: 17, dccp: 33, gre: 47, esp: 50, ah: 51, icmpv6: 58, 'ipv6-icmp': 58, sctp: 132, udplite: 136 };
const HOST_LE = os.endianness() === 'LE';

const valueError = (type: string, value: unknown): TypeError => new TypeError(`not a valid ${type}: ${JSON.stringify(value)}`);

function uint(type: string, value: NftScalar, max: number): number {
  if (typeof value !== 'number' || !Number.isInteger(value) || value < 0 || value > max) throw valueError(type, value);
  return value;
}

const SCALAR_BYTES: Record<NftScalarType, number> = { mark: 4, ipv4_addr: 4, ipv6_addr: 16, ether_addr: 6, inet_service: 2, inet_proto: 1 };

/** Writes one value of one type at `at`, unpadded (as a set keyed by that type alone stores it). */
function writeScalar(type: NftScalarType, value: NftScalar, out: Buffer, at: number): void {
  switch (type) {
    case 'mark':
      // meta mark (and numgen, jhash) are host-endian integers: nft stores them as such.
      if (HOST_LE) out.writeUInt32LE(uint(type, value, 0xffffffff), at);
      else out.writeUInt32BE(uint(type, value, 0xffffffff), at);
      return;
    case 'ipv4_addr': {
      const n = typeof value === 'string' ? parseIPv4(value) : null;
      if (n === null) throw valueError(type, value);
      out.writeUInt32BE(n, at);
      return;
    }
    case 'ipv6_addr':
      if (typeof value !== 'string' || !isIPv6(value)) throw valueError(type, value);
      writeIPv6(value, out, at);
      return;
    case 'ether_addr':
      if (typeof value !== 'string' || !/^[0-9a-f]{2}(:[0-9a-f]{2}){5}$/i.test(value)) throw valueError(type, value);
      out.write(value.replaceAll(':', ''), at, 6, 'hex');
      return;
    case 'inet_service':
      out.writeUInt16BE(uint(type, value, 0xffff), at);
      return;
    case 'inet_proto': {
      const n = typeof value === 'string' ? PROTOCOLS[value] : uint(type, value, 0xff);
      if (n === undefined) throw valueError(type, value);
      out[at] = n;
      return;
    }
  }
}

/** The 16 bytes of an address isIPv6() accepted ("::", "2001:db8::1", "::ffff:10.0.0.1"). */
function writeIPv6(text: string, out: Buffer, at: number): void {
  let s = text.split('%')[0] as string;
  const v4 = /(\d+\.\d+\.\d+\.\d+)$/.exec(s);
  if (v4) {
    const n = parseIPv4(v4[1] as string) as number;
    s = `${s.slice(0, v4.index)}${(n >>> 16).toString(16)}:${(n & 0xffff).toString(16)}`;
  }
  const [head, tail] = s.includes('::') ? (s.split('::') as [string, string]) : [s, undefined];
  const words = (part: string | undefined) => (part ? part.split(':').map((w) => parseInt(w, 16)) : []);
  const left = words(head);
  const right = words(tail);
  const all = tail === undefined ? left : [...left, ...new Array<number>(8 - left.length - right.length).fill(0), ...right];
  all.forEach((w, i) => out.writeUInt16BE(w, at + i * 2));
}

/**
 * A key or data value as the kernel stores it. A concatenation puts each field at the start
 * of its own 32-bit register, so every field is zero-padded to a multiple of 4 bytes
 * (inet_service 2 -> 4, inet_proto 1 -> 4, ether_addr 6 -> 8); a single field is not padded
 * (a set `type inet_service` has 2-byte keys) and the kernel refuses any other length.
 */
export function encodeValue(type: NftType, value: NftValue): Buffer {
  if (typeof type === 'string') {
    if (typeof value === 'object') throw new TypeError(`one ${type} expected, got a list: ${JSON.stringify(value)}`);
    // Every byte is written: an unzeroed slice of the pool will do (much cheaper than alloc for 4 bytes).
    const out = Buffer.allocUnsafe(SCALAR_BYTES[type]);
    writeScalar(type, value, out, 0);
    return out;
  }
  if (!Array.isArray(value) || value.length !== type.length) throw new TypeError(`${type.join(' . ')} expects ${type.length} values, got ${JSON.stringify(value)}`);
  let length = 0;
  for (const t of type) length += (SCALAR_BYTES[t] + 3) & ~3;
  if (length > VALUE_MAX_BYTES) throw new TypeError(`${type.join(' . ')} is longer than ${VALUE_MAX_BYTES} bytes`);
  const out = Buffer.allocUnsafe(length).fill(0);
  let at = 0;
  type.forEach((t, i) => {
    writeScalar(t, value[i] as NftScalar, out, at);
    at += (SCALAR_BYTES[t] + 3) & ~3;
  });
  return out;
}

// ---------------------------------------------------------------------------------------
// Operations.

export interface NftElement {
  /**
   * The key's bytes (encodeValue), or, for a `mark` key, the number itself: a 32-bit
   * host-order integer written straight into the batch. A cold load writes 640,000 selection
   * elements; a 4-byte Buffer for each key and value was a fifth of the start's allocations.
   */
  key: Buffer | number;
  /** Interval sets with concatenated keys (pipapo): the last key of the range, inclusive; nft sends key itself for a single value. */
  keyEnd?: Buffer;
  /** A map's data (encodeValue; a number for `mark`, as for keys), or a verdict; none for a set, and ignored by delete. */
  data?: Buffer | number | NftVerdict;
  /** Element timeout in ms (the set needs `flags timeout`); none: the set's default. Ignored by delete. */
  timeoutMs?: number;
}

interface SetRef {
  family: NftFamily;
  table: string;
  set: string;
}

/**
 * One step of a batch. `add` creates elements without NLM_F_EXCL, like `nft add element`: an
 * identical existing element is success, an existing key with OTHER data fails with EEXIST
 * (change a value with delete + add in one batch). `delete` fails with ENOENT for a missing
 * element. An add or delete with no elements sends nothing (a DELSETELEM without elements
 * would flush the set); `flush` empties the set.
 */
export type NftElementOp = (SetRef & { kind: 'add' | 'delete'; elements: readonly NftElement[] }) | (SetRef & { kind: 'flush' });

/**
 * One expression of a rule, as the kernel takes it (registers: 0 the verdict, 1-4 the 16-byte
 * ones, 8-23 the 32-bit ones; see nft-rules.ts for the rules that become these). Attributes
 * go in the order libnftnl writes them.
 */
export type NftExpr =
  | { expr: 'immediate'; dreg: number; data: Buffer }
  | { expr: 'verdict'; verdict: NftVerdict }
  | { expr: 'meta-load'; key: number; dreg: number }
  | { expr: 'meta-set'; key: number; sreg: number }
  | { expr: 'cmp'; sreg: number; op: number; data: Buffer }
  | { expr: 'payload-load'; dreg: number; base: number; offset: number; len: number }
  | { expr: 'payload-write'; sreg: number; base: number; offset: number; len: number; csumType: number; csumOffset: number; csumFlags: number }
  | { expr: 'jhash'; sreg: number; dreg: number; len: number; modulus: number; seed: number; offset: number };

/** A new regular chain (no hook) and its rules, appended in order: NEWCHAIN, then a NEWRULE each. */
export interface NftChainOp {
  kind: 'chain';
  family: NftFamily;
  table: string;
  chain: string;
  rules: readonly (readonly NftExpr[])[];
}

/** What one batch can hold: element operations, and new chains with their rules. */
export type NftBatchOp = NftElementOp | NftChainOp;

export interface NftSetSpec extends SetRef {
  key: NftType;
  /** A map's data type; none for a set. */
  data?: NftType | 'verdict';
}

export interface NftEntry {
  key: NftValue;
  keyEnd?: NftValue;
  data?: NftValue | NftVerdict;
  timeoutMs?: number;
}

/** Typed operations on one set or map: values in nft's terms, checked and encoded here. */
export interface NftSetHandle {
  readonly spec: NftSetSpec;
  element(entry: NftEntry): NftElement;
  add(entries: readonly NftEntry[]): NftElementOp;
  /** Keys (with keyEnd for interval sets); data and timeouts are not needed. */
  delete(entries: readonly Pick<NftEntry, 'key' | 'keyEnd'>[]): NftElementOp;
  flush(): NftElementOp;
}

export function nftSet(spec: NftSetSpec): NftSetHandle {
  const { family, table, set } = spec;
  const where = `${family} ${table} ${set}`;
  const element = (entry: NftEntry): NftElement => {
    const out: NftElement = { key: spec.key === 'mark' ? uint('mark', entry.key as NftScalar, 0xffffffff) : encodeValue(spec.key, entry.key) };
    if (entry.keyEnd !== undefined) out.keyEnd = encodeValue(spec.key, entry.keyEnd);
    if (entry.timeoutMs !== undefined) out.timeoutMs = entry.timeoutMs;
    if (entry.data !== undefined) {
      if (spec.data === undefined) throw new TypeError(`${where} is a set: an element has no data`);
      out.data = spec.data === 'verdict' ? verdictOf(entry.data) : spec.data === 'mark' ? uint('mark', entry.data as NftScalar, 0xffffffff) : encodeValue(spec.data, entry.data as NftValue);
    }
    return out;
  };
  return {
    spec,
    element,
    add(entries) {
      const elements = entries.map((e) => {
        if (spec.data !== undefined && e.data === undefined) throw new TypeError(`${where} is a map: element ${JSON.stringify(e.key)} needs data`);
        return element(e);
      });
      return { kind: 'add', family, table, set, elements };
    },
    delete(entries) {
      return { kind: 'delete', family, table, set, elements: entries.map((e) => element({ key: e.key, keyEnd: e.keyEnd })) };
    },
    flush: () => ({ kind: 'flush', family, table, set }),
  };
}

function verdictOf(data: unknown): NftVerdict {
  const v = data as NftVerdict;
  if (typeof v !== 'object' || v === null || !(v.verdict in NFT_VERDICT_CODES)) throw new TypeError(`not a verdict: ${JSON.stringify(data)}`);
  if ((v.verdict === 'jump' || v.verdict === 'goto') && !(typeof v.chain === 'string' && v.chain.length > 0)) throw new TypeError(`${v.verdict} needs a chain`);
  return v;
}

export function describeOp(op: NftBatchOp): string {
  if (op.kind === 'chain') return `add chain ${op.family} ${op.table} ${op.chain} with ${op.rules.length} rule${op.rules.length === 1 ? '' : 's'}`;
  const count = op.kind === 'flush' ? '' : `, ${op.elements.length} element${op.elements.length === 1 ? '' : 's'}`;
  return `${op.kind} ${op.family} ${op.table} ${op.set}${count}`;
}

// ---------------------------------------------------------------------------------------
// Batch encoding.

/** A growable buffer of netlink messages and attributes (what libmnl does in C). */
class MessageBuilder {
  buf = Buffer.allocUnsafe(16 * 1024);
  len = 0;

  private ensure(n: number): void {
    if (this.len + n <= this.buf.length) return;
    let size = this.buf.length * 2;
    while (size < this.len + n) size *= 2;
    const next = Buffer.allocUnsafe(size);
    this.buf.copy(next, 0, 0, this.len);
    this.buf = next;
  }

  private pad(): void {
    const padded = (this.len + 3) & ~3;
    this.buf.fill(0, this.len, padded);
    this.len = padded;
  }

  /** nlmsghdr + nfgenmsg; returns the message's offset for end(). */
  beginMessage(type: number, flags: number, seq: number, portId: number, family: number, resId: number): number {
    this.ensure(NFNL_HDRLEN);
    const at = this.len;
    this.buf.writeUInt16LE(type, at + 4);
    this.buf.writeUInt16LE(flags, at + 6);
    this.buf.writeUInt32LE(seq, at + 8);
    this.buf.writeUInt32LE(portId, at + 12);
    this.buf.writeUInt8(family, at + 16);
    this.buf.writeUInt8(0, at + 17); // NFNETLINK_V0
    this.buf.writeUInt16BE(resId, at + 18);
    this.len += NFNL_HDRLEN;
    return at;
  }

  endMessage(at: number): void {
    this.buf.writeUInt32LE(this.len - at, at);
  }

  attr(type: number, value: Buffer): void {
    this.ensure(4 + value.length + 3);
    const buf = this.buf;
    const at = this.len;
    buf.writeUInt16LE(4 + value.length, at);
    buf.writeUInt16LE(type, at + 2);
    // Keys and values are a few bytes: a plain loop beats Buffer.copy's native call.
    if (value.length <= 16) for (let i = 0; i < value.length; i++) buf[at + 4 + i] = value[i] as number;
    else value.copy(buf, at + 4);
    this.len += 4 + value.length;
    this.pad();
  }

  /** A NUL-terminated string, written in place (a first load writes 40,000 rule messages, each naming its table and chain). */
  string(type: number, value: string): void {
    const bytes = Buffer.byteLength(value, 'utf8') + 1;
    this.ensure(4 + bytes + 3);
    const at = this.len;
    this.buf.writeUInt16LE(4 + bytes, at);
    this.buf.writeUInt16LE(type, at + 2);
    this.buf.write(value, at + 4, 'utf8');
    this.buf[at + 4 + bytes - 1] = 0;
    this.len += 4 + bytes;
    this.pad();
  }

  be32(type: number, value: number): void {
    this.ensure(8);
    this.buf.writeUInt16LE(8, this.len);
    this.buf.writeUInt16LE(type, this.len + 2);
    this.buf.writeInt32BE(value | 0, this.len + 4);
    this.len += 8;
  }

  /** A 32-bit host-order integer (a mark), as encodeValue('mark') writes it. */
  hostU32(type: number, value: number): void {
    this.ensure(8);
    this.buf.writeUInt16LE(8, this.len);
    this.buf.writeUInt16LE(type, this.len + 2);
    if (HOST_LE) this.buf.writeUInt32LE(value, this.len + 4);
    else this.buf.writeUInt32BE(value, this.len + 4);
    this.len += 8;
  }

  be64(type: number, value: number): void {
    this.ensure(12);
    this.buf.writeUInt16LE(12, this.len);
    this.buf.writeUInt16LE(type, this.len + 2);
    this.buf.writeBigUInt64BE(BigInt(value), this.len + 4);
    this.len += 12;
  }

  beginNest(type: number): number {
    this.ensure(4);
    const at = this.len;
    this.buf.writeUInt16LE(type | NLA_F_NESTED, at + 2);
    this.len += 4;
    return at;
  }

  endNest(at: number): void {
    this.buf.writeUInt16LE(this.len - at, at);
  }

  /** Drops what was written after `len` (an element that did not fit its message). */
  truncate(len: number): void {
    this.len = len;
  }

  result(): Buffer {
    return this.buf.subarray(0, this.len);
  }
}

/**
 * One element of a NFTA_SET_ELEM_LIST_ELEMENTS nest. `index` is the nest's attribute type:
 * libnftnl numbers the elements of each message 1, 2, 3... where the kernel's own dumps say
 * NFTA_LIST_ELEM (1); the kernel ignores it, and numbering them keeps our bytes nft's.
 */
function writeElement(b: MessageBuilder, e: NftElement, withData: boolean, index: number): void {
  // Attribute order as libnftnl writes it: timeout, key, key end, data.
  const item = b.beginNest(index);
  if (withData && e.timeoutMs !== undefined) {
    if (!Number.isInteger(e.timeoutMs) || e.timeoutMs < 0) throw new TypeError(`not a timeout in ms: ${e.timeoutMs}`);
    b.be64(NFTA_SET_ELEM_TIMEOUT, e.timeoutMs);
  }
  writeValue(b, NFTA_SET_ELEM_KEY, e.key);
  if (e.keyEnd !== undefined) writeValue(b, NFTA_SET_ELEM_KEY_END, e.keyEnd);
  if (withData && e.data !== undefined) {
    if (typeof e.data === 'number' || Buffer.isBuffer(e.data)) writeValue(b, NFTA_SET_ELEM_DATA, e.data);
    else {
      const data = b.beginNest(NFTA_SET_ELEM_DATA);
      const v = verdictOf(e.data);
      const verdict = b.beginNest(NFTA_DATA_VERDICT);
      b.be32(NFTA_VERDICT_CODE, NFT_VERDICT_CODES[v.verdict]);
      if (v.verdict === 'jump' || v.verdict === 'goto') b.string(NFTA_VERDICT_CHAIN, v.chain);
      b.endNest(verdict);
      b.endNest(data);
    }
  }
  b.endNest(item);
}

/** A key or data value: a nest holding NFTA_DATA_VALUE (a number: a mark, 4 bytes in host order). */
function writeValue(b: MessageBuilder, type: number, value: Buffer | number): void {
  if (typeof value === 'number') {
    const nest = b.beginNest(type);
    b.hostU32(NFTA_DATA_VALUE, value);
    b.endNest(nest);
    return;
  }
  if (value.length === 0 || value.length > VALUE_MAX_BYTES) throw new TypeError(`a key or value is 1 to ${VALUE_MAX_BYTES} bytes, not ${value.length}`);
  const nest = b.beginNest(type);
  b.attr(NFTA_DATA_VALUE, value);
  b.endNest(nest);
}

/** One NFTA_LIST_ELEM of a rule's expressions: its name and its attributes, as libnftnl orders them. */
function writeExpression(b: MessageBuilder, e: NftExpr): void {
  const item = b.beginNest(NFTA_LIST_ELEM);
  const name = e.expr === 'verdict' ? 'immediate' : e.expr === 'meta-load' || e.expr === 'meta-set' ? 'meta' : e.expr === 'payload-load' || e.expr === 'payload-write' ? 'payload' : e.expr === 'jhash' ? 'hash' : e.expr;
  b.string(NFTA_EXPR_NAME, name);
  const data = b.beginNest(NFTA_EXPR_DATA);
  switch (e.expr) {
    case 'immediate': {
      b.be32(1 /* NFTA_IMMEDIATE_DREG */, e.dreg);
      const d = b.beginNest(2 /* NFTA_IMMEDIATE_DATA */);
      b.attr(NFTA_DATA_VALUE, e.data);
      b.endNest(d);
      break;
    }
    case 'verdict': {
      const v = verdictOf(e.verdict);
      b.be32(1 /* NFTA_IMMEDIATE_DREG */, 0 /* NFT_REG_VERDICT */);
      const d = b.beginNest(2 /* NFTA_IMMEDIATE_DATA */);
      const verdict = b.beginNest(NFTA_DATA_VERDICT);
      b.be32(NFTA_VERDICT_CODE, NFT_VERDICT_CODES[v.verdict]);
      if (v.verdict === 'jump' || v.verdict === 'goto') b.string(NFTA_VERDICT_CHAIN, v.chain);
      b.endNest(verdict);
      b.endNest(d);
      break;
    }
    case 'meta-load':
      b.be32(2 /* NFTA_META_KEY */, e.key);
      b.be32(1 /* NFTA_META_DREG */, e.dreg);
      break;
    case 'meta-set':
      b.be32(2 /* NFTA_META_KEY */, e.key);
      b.be32(3 /* NFTA_META_SREG */, e.sreg);
      break;
    case 'cmp': {
      b.be32(1 /* NFTA_CMP_SREG */, e.sreg);
      b.be32(2 /* NFTA_CMP_OP */, e.op);
      const d = b.beginNest(3 /* NFTA_CMP_DATA */);
      b.attr(NFTA_DATA_VALUE, e.data);
      b.endNest(d);
      break;
    }
    case 'payload-load':
      b.be32(1 /* NFTA_PAYLOAD_DREG */, e.dreg);
      b.be32(2 /* NFTA_PAYLOAD_BASE */, e.base);
      b.be32(3 /* NFTA_PAYLOAD_OFFSET */, e.offset);
      b.be32(4 /* NFTA_PAYLOAD_LEN */, e.len);
      break;
    case 'payload-write':
      b.be32(5 /* NFTA_PAYLOAD_SREG */, e.sreg);
      b.be32(2 /* NFTA_PAYLOAD_BASE */, e.base);
      b.be32(3 /* NFTA_PAYLOAD_OFFSET */, e.offset);
      b.be32(4 /* NFTA_PAYLOAD_LEN */, e.len);
      b.be32(6 /* NFTA_PAYLOAD_CSUM_TYPE */, e.csumType);
      b.be32(7 /* NFTA_PAYLOAD_CSUM_OFFSET */, e.csumOffset);
      b.be32(8 /* NFTA_PAYLOAD_CSUM_FLAGS */, e.csumFlags);
      break;
    case 'jhash':
      b.be32(1 /* NFTA_HASH_SREG */, e.sreg);
      b.be32(2 /* NFTA_HASH_DREG */, e.dreg);
      b.be32(3 /* NFTA_HASH_LEN */, e.len);
      b.be32(4 /* NFTA_HASH_MODULUS */, e.modulus);
      b.be32(5 /* NFTA_HASH_SEED */, e.seed);
      b.be32(6 /* NFTA_HASH_OFFSET */, e.offset);
      b.be32(7 /* NFTA_HASH_TYPE */, 0 /* NFT_HASH_JENKINS */);
      break;
  }
  b.endNest(data);
  b.endNest(item);
}

export interface EncodedBatch {
  /** The datagram: BATCH_BEGIN, the generation marker, the element messages, BATCH_END. */
  datagram: Buffer;
  /** Element messages (the marker excluded). */
  messages: number;
  beginSeq: number;
  endSeq: number;
  /** Sequence number of the NEWTABLE marker that carries NLM_F_ECHO (null for an empty batch). */
  markerSeq: number | null;
  /** Sequence number -> index of the operation its message belongs to (the marker -> null). */
  opBySeq: Map<number, number | null>;
  /**
   * The messages that ask for an ACK, so answer even on success: all but the leading messages
   * of a chain operation (the kernel answers every message that fails, ACK or not, in order,
   * so the ACK of a chain's last rule comes after any failure of that chain's messages).
   */
  acked: Set<number>;
  /** Receive buffer the replies could take if every message failed (each error echoes its message). */
  worstReplyBytes: number;
}

export interface EncodeOptions {
  /** Sequence number of BATCH_BEGIN; the following messages count up from it (mod 2^32). */
  firstSeq: number;
  /** Our socket's netlink port id (nlmsg_pid); 0 is accepted by the kernel too. */
  portId?: number;
  /** Apply only if the ruleset generation is still this one (NFNL_BATCH_GENID); else ERESTART. */
  ifGeneration?: number;
}

/**
 * Encodes the operations as one nfnetlink batch. Each add/delete becomes one message per
 * 32 KB of elements (see MESSAGE_MAX_BYTES), each flush one message; every message asks for
 * an ACK. Throws TypeError on a malformed operation.
 */
export function encodeElementBatch(ops: readonly NftBatchOp[], options: EncodeOptions): EncodedBatch {
  const b = new MessageBuilder();
  const port = options.portId ?? 0;
  const next = (seq: number) => (seq + 1) >>> 0;
  const opBySeq = new Map<number, number | null>();
  const acked = new Set<number>();
  const beginSeq = options.firstSeq >>> 0;
  let seq = beginSeq;

  const begin = b.beginMessage(NFNL_MSG_BATCH_BEGIN, NLM_F_REQUEST, seq, port, 0, NFNL_SUBSYS_NFTABLES);
  if (options.ifGeneration !== undefined) {
    if (!Number.isInteger(options.ifGeneration) || options.ifGeneration <= 0 || options.ifGeneration > 0xffffffff) throw new TypeError(`not a generation id: ${options.ifGeneration}`);
    b.be32(NFNL_BATCH_GENID, options.ifGeneration);
  }
  b.endMessage(begin);

  let markerSeq: number | null = null;
  let messages = 0;
  ops.forEach((op, index) => {
    const family = FAMILY_NUMBERS[op.family];
    if (family === undefined) throw new TypeError(`unknown nftables family '${op.family}'`);
    if ((op.kind === 'add' || op.kind === 'delete') && op.elements.length === 0) return;
    if (markerSeq === null) {
      // No-op NEWTABLE with NLM_F_ECHO so that the kernel sends us NFT_MSG_NEWGEN (header comment).
      seq = next(seq);
      markerSeq = seq;
      opBySeq.set(seq, null);
      acked.add(seq);
      const m = b.beginMessage((NFNL_SUBSYS_NFTABLES << 8) | NFT_MSG_NEWTABLE, NLM_F_REQUEST | NLM_F_ACK | NLM_F_ECHO, seq, port, family, 0);
      b.string(NFTA_TABLE_NAME, op.table);
      b.endMessage(m);
    }
    if (op.kind === 'chain') {
      // NEWCHAIN, then each rule appended (NEWRULE with NLM_F_APPEND, as `nft add rule`); one
      // sequence number each, all of them this operation's.
      // Only the operation's last message asks for an ACK: nft asks for none, and an ACK for
      // each of a first load's 40,000 rules cost as many replies to build and read.
      const last = op.rules.length;
      let at = 0;
      const message = (type: number, flags: number) => {
        seq = next(seq);
        opBySeq.set(seq, index);
        messages++;
        const ack = at++ === last;
        if (ack) acked.add(seq);
        return b.beginMessage((NFNL_SUBSYS_NFTABLES << 8) | type, NLM_F_REQUEST | (ack ? NLM_F_ACK : 0) | flags, seq, port, family, 0);
      };
      const chain = message(NFT_MSG_NEWCHAIN, NLM_F_CREATE);
      b.string(NFTA_CHAIN_TABLE, op.table);
      b.string(NFTA_CHAIN_NAME, op.chain);
      b.endMessage(chain);
      for (const rule of op.rules) {
        const m = message(NFT_MSG_NEWRULE, NLM_F_CREATE | NLM_F_APPEND);
        b.string(NFTA_RULE_TABLE, op.table);
        b.string(NFTA_RULE_CHAIN, op.chain);
        const list = b.beginNest(NFTA_RULE_EXPRESSIONS);
        for (const e of rule) writeExpression(b, e);
        b.endNest(list);
        b.endMessage(m);
      }
      return;
    }
    const type = (NFNL_SUBSYS_NFTABLES << 8) | (op.kind === 'add' ? NFT_MSG_NEWSETELEM : NFT_MSG_DELSETELEM);
    const flags = NLM_F_REQUEST | NLM_F_ACK | (op.kind === 'add' ? NLM_F_CREATE : 0);
    const startMessage = () => {
      seq = next(seq);
      opBySeq.set(seq, index);
      messages++;
      acked.add(seq);
      const m = b.beginMessage(type, flags, seq, port, family, 0);
      b.string(NFTA_SET_ELEM_LIST_TABLE, op.table);
      b.string(NFTA_SET_ELEM_LIST_SET, op.set);
      return m;
    };
    if (op.kind === 'flush') {
      // DELSETELEM without NFTA_SET_ELEM_LIST_ELEMENTS is the kernel's "flush set".
      b.endMessage(startMessage());
      return;
    }
    let i = 0;
    while (i < op.elements.length) {
      const m = startMessage();
      const nest = b.beginNest(NFTA_SET_ELEM_LIST_ELEMENTS);
      const first = i;
      for (; i < op.elements.length; i++) {
        const before = b.len;
        writeElement(b, op.elements[i] as NftElement, op.kind === 'add', i - first + 1);
        if (b.len - m > MESSAGE_MAX_BYTES && i > first) {
          b.truncate(before);
          break;
        }
      }
      b.endNest(nest);
      b.endMessage(m);
    }
  });

  seq = next(seq);
  const end = b.beginMessage(NFNL_MSG_BATCH_END, NLM_F_REQUEST, seq, port, 0, NFNL_SUBSYS_NFTABLES);
  b.endMessage(end);
  const datagram = b.result();
  return { datagram, messages, beginSeq, endSeq: seq, markerSeq, opBySeq, acked, worstReplyBytes: worstReplyBytes(datagram) };
}

const align4 = (n: number) => (n + 3) & ~3;
const stringAttrBytes = (text: string) => align4(4 + Buffer.byteLength(text, 'utf8') + 1);
const valueBytes = (v: Buffer | number) => 4 + (typeof v === 'number' ? 8 : align4(4 + v.length));

/** What writeElement writes for this element, in bytes. */
function elementBytes(e: NftElement, withData: boolean): number {
  let n = 4 + valueBytes(e.key);
  if (withData && e.timeoutMs !== undefined) n += 12;
  if (e.keyEnd !== undefined) n += valueBytes(e.keyEnd);
  if (withData && e.data !== undefined) {
    if (typeof e.data === 'number' || Buffer.isBuffer(e.data)) n += valueBytes(e.data);
    else n += 4 + 4 + 8 + (e.data.verdict === 'jump' || e.data.verdict === 'goto' ? stringAttrBytes(e.data.chain) : 0);
  }
  return n;
}

/**
 * The length of encodeElementBatch's datagram for these operations, counted without encoding
 * them (a cold load sizes 680,000 elements into batches: encoding them twice cost 0.1 s and
 * as much garbage). Follows encodeElementBatch message by message; a unit test holds the two
 * equal.
 */
export function elementBatchBytes(ops: readonly NftBatchOp[], options: Pick<EncodeOptions, 'ifGeneration'> = {}): number {
  let n = NFNL_HDRLEN + (options.ifGeneration !== undefined ? 8 : 0);
  let marker = false;
  for (const op of ops) {
    if ((op.kind === 'add' || op.kind === 'delete') && op.elements.length === 0) continue;
    if (!marker) {
      marker = true;
      n += NFNL_HDRLEN + stringAttrBytes(op.table);
    }
    if (op.kind === 'chain') {
      // Rare and small (a chain's rules): measured by encoding it alone, less that batch's frame.
      n += encodeElementBatch([op], { firstSeq: 1 }).datagram.length - 3 * NFNL_HDRLEN - stringAttrBytes(op.table);
      continue;
    }
    const head = NFNL_HDRLEN + stringAttrBytes(op.table) + stringAttrBytes(op.set);
    if (op.kind === 'flush') {
      n += head;
      continue;
    }
    const withData = op.kind === 'add';
    let message = head + 4;
    let inMessage = 0;
    for (const e of op.elements) {
      const bytes = elementBytes(e, withData);
      if (inMessage > 0 && message + bytes > MESSAGE_MAX_BYTES) {
        n += message;
        message = head + 4;
        inMessage = 0;
      }
      message += bytes;
      inMessage++;
    }
    n += message;
  }
  return n + NFNL_HDRLEN;
}

/** The receive buffer the replies to this batch could take if every message failed (see MESSAGE_MAX_BYTES). */
export function worstReplyBytes(datagram: Buffer): number {
  let total = REPLY_FIXED_BYTES;
  for (let at = 0; at + NLMSG_HDRLEN <= datagram.length; ) {
    const len = datagram.readUInt32LE(at);
    if (datagram.readUInt16LE(at + 6) & NLM_F_ACK) total += worstReply(len);
    at += (len + 3) & ~3;
  }
  return total;
}

// ---------------------------------------------------------------------------------------
// Errors.

const ERRNO_NAMES = new Map<number, string>([...Object.entries(os.constants.errno).map(([name, n]) => [n, name] as [number, string]), [85, 'ERESTART']]);
export const errnoName = (errno: number): string => ERRNO_NAMES.get(errno) ?? `errno ${errno}`;

const KIND_BY_CODE: Record<string, HostNetworkErrorKind> = { ENOENT: 'not-found', EEXIST: 'exists', EPERM: 'permission', EACCES: 'permission' };

export interface NftOpFailure {
  /** Index of the failed operation in the commit's list; null: the batch as a whole (see NftBatchError). */
  opIndex: number | null;
  errno: number;
  code: string;
}

/**
 * A commit that did not apply. `applied` says what the kernel holds now: false for a batch
 * the kernel refused (nothing of it applied), or one never sent (too large, socket closed);
 * 'unknown' when no complete answer came (timeout, replies lost): read the state back.
 */
export class NftBatchError extends HostNetworkError {
  override name = 'NftBatchError';
  /** The first failed operation (null when the batch as a whole was refused, or on timeout...). */
  readonly opIndex: number | null;
  /** Every failure the kernel reported, in message order (it checks every message of a failed batch). */
  readonly failures: NftOpFailure[];
  readonly applied: false | 'unknown';

  constructor(message: string, code: string, opIndex: number | null, failures: NftOpFailure[], applied: false | 'unknown') {
    super(KIND_BY_CODE[code] ?? 'other', message, { code });
    this.opIndex = opIndex;
    this.failures = failures;
    this.applied = applied;
  }
}

// ---------------------------------------------------------------------------------------
// The writer.

export interface CommitResult {
  /**
   * The ruleset generation right after this commit (NFT_MSG_NEWGEN), or null when the batch
   * changed nothing (the kernel bumps the generation only for a non-empty transaction) or
   * when that notification was lost.
   */
  generation: number | null;
  /** Element messages sent (the marker excluded); 0 for an empty batch, which is not sent. */
  messages: number;
  /** Datagram size. */
  bytes: number;
}

export interface CommitOptions {
  /** Give up waiting after this long (default: the writer's timeoutMs). */
  timeoutMs?: number;
  /** Apply only if the ruleset generation is still this one; else fails with ERESTART and changes nothing. */
  ifGeneration?: number;
  /** Refuse (EMSGSIZE, nothing sent) a datagram larger than this, besides the writer's own limits. */
  maxBytes?: number;
}

export interface NftElementWriter {
  /**
   * The largest batch this writer sends, in bytes: SO_SNDBUF - 32, or less when the receive
   * buffer could not hold the error replies of a batch that large (see MESSAGE_MAX_BYTES).
   * A batch of many small messages (many flushes, many tiny operations) can be refused below it.
   */
  readonly maxBatchBytes: number;
  /** The datagram size of these operations (encodes them). */
  batchBytes(ops: readonly NftBatchOp[]): number;
  /**
   * Applies the operations as one atomic batch; resolves once the kernel has answered every
   * message. Rejects with NftBatchError: EMSGSIZE (too large: nothing sent, use nft -f), the
   * kernel's errno with the failed operation's index, ETIMEDOUT, or ECONNRESET (writer closed
   * or socket error). Calls are serialized, one batch in flight per socket, unless the writer
   * is pipelined (WriterOptions).
   */
  commit(ops: readonly NftBatchOp[], options?: CommitOptions): Promise<CommitResult>;
  /** The current ruleset generation (NFT_MSG_GETGEN over the same socket, queued behind commits). */
  generation(): Promise<number>;
  /** Replies that belonged to no request in flight (late answers of a timed-out one), dropped. */
  readonly staleReplies: number;
  /** Closes the socket; a request in flight and queued ones reject with ECONNRESET. */
  close(): void;
}

/** What the writer needs of a netlink socket (a RawNetlinkSocket; a fake in unit tests). */
export interface NetlinkTransport {
  readonly portId: number;
  /** The largest datagram sendmsg() accepts. */
  readonly maxDatagramBytes: number;
  /** SO_RCVBUF as the kernel reports it (what the queue of unread replies may hold). */
  readonly recvBufferBytes: number;
  /** One datagram, one sendmsg(); done(err) once sent or refused. */
  send(datagram: Buffer, done: (err?: Error & { code?: string }) => void): void;
  /** Datagrams received; fromPort 0 is the kernel. */
  onMessage(handler: (datagram: Buffer, fromPort: number) => void): void;
  onError(handler: (err: Error & { code?: string }) => void): void;
  /** Keep the process alive while a request waits (and not otherwise). */
  hold(held: boolean): void;
  close(): void;
}

export interface WriterOptions {
  /** Default per-request timeout (ms). The kernel answers within sendmsg(): this guards against the unexpected. */
  timeoutMs?: number;
  /**
   * Sends each request at once, in call order, without waiting for the previous one's
   * answer, so the kernel never waits for this process between batches. Only for a transport
   * that queues them and sends the next only while the replies still unread fit its receive
   * buffer (socket-process-child.ts): several batches' replies could overflow it
   * (MESSAGE_MAX_BYTES). Each batch is still its own transaction, and a failed one does not
   * stop the next. The timeout then includes the wait in the transport's queue.
   */
  pipelined?: boolean;
}

export interface OpenWriterOptions extends WriterOptions {
  /** SO_SNDBUF to ask for (default: as much as net.core.wmem_max allows). */
  sendBufferBytes?: number;
  /** SO_RCVBUF to ask for (default: as much as net.core.rmem_max allows). */
  recvBufferBytes?: number;
}

/**
 * Opens a NETLINK_NETFILTER socket in the current network namespace, asking for the largest
 * send and receive buffers the kernel grants (2 x net.core.wmem_max and rmem_max: 8 MiB each
 * with this machine's 4 MiB sysctls): they bound one batch (maxBatchBytes).
 */
export function openNftElementWriter(options: OpenWriterOptions = {}): NftElementWriter {
  return createNftElementWriter(openNetfilterTransport(options), options);
}

/** The transport of openNftElementWriter (also the socket of socket-process-child.ts). */
export function openNetfilterTransport(options: Pick<OpenWriterOptions, 'sendBufferBytes' | 'recvBufferBytes'> = {}): NetlinkTransport {
  const socket = new RawNetlinkSocket(NETLINK_NETFILTER, {
    // The kernel doubles the value and caps it at the sysctl maximum: asking too much is fine.
    sendBufferSize: options.sendBufferBytes ?? 0x7fffffff,
    recvBufferSize: options.recvBufferBytes ?? 0x7fffffff,
    // Message peeking (the default) reads each datagram whole, whatever its size.
  });
  socket.unref();
  return {
    portId: socket.address().port,
    maxDatagramBytes: socket.getSendBufferSize() - SNDBUF_OVERHEAD,
    recvBufferBytes: socket.getRecvBufferSize(),
    send: (datagram, done) => socket.send(datagram, {}, done),
    onMessage: (handler) => socket.on('message', (m, rinfo) => handler(m, rinfo.port)),
    // Without a listener, an 'error' event would throw inside the binding's callback.
    onError: (handler) => socket.on('error', handler),
    hold: (held) => (held ? socket.ref() : socket.unref()),
    close: () => socket.close(),
  };
}

/** Whether a sequence number is within first..last, which may wrap around 2^32. */
export const seqInRange = (seq: number, first: number, last: number): boolean => (first <= last ? seq >= first && seq <= last : seq >= first || seq <= last);

type Settle<T> = (r: { ok: T } | { err: NftBatchError }) => void;

interface InFlight {
  /** The sequence numbers this request owns. */
  owns(seq: number): boolean;
  onReply(type: number, seq: number, payload: Buffer): void;
  abort(err: NftBatchError): void;
}

const closedError = () => new NftBatchError('nft element writer is closed', 'ECONNRESET', null, [], false);

/** The largest batch of full messages whose worst-case replies fit `recvBufferBytes`. */
function batchLimit(maxDatagramBytes: number, recvBufferBytes: number): number {
  const messages = Math.floor((recvBufferBytes - REPLY_FIXED_BYTES - worstReply(64)) / worstReply(MESSAGE_MAX_BYTES));
  return Math.max(0, Math.min(maxDatagramBytes, messages * MESSAGE_MAX_BYTES));
}

/** The writer over any transport (openNftElementWriter gives it the real socket). */
export function createNftElementWriter(transport: NetlinkTransport, options: WriterOptions = {}): NftElementWriter {
  const defaultTimeoutMs = options.timeoutMs ?? 10_000;
  // Each request takes fresh sequence numbers, so a late reply to an abandoned request can
  // never pass for a reply to the current one.
  let nextSeq = Math.floor(Math.random() * 0x7fffffff) + 1;
  const allocate = (count: number): number => {
    const first = nextSeq;
    nextSeq = (nextSeq + count) >>> 0 || 1;
    return first;
  };
  let queue: Promise<unknown> = Promise.resolve();
  const inFlight = new Set<InFlight>();
  const ownerOf = (seq: number) => {
    for (const r of inFlight) if (r.owns(seq)) return r;
    return undefined;
  };
  let closed = false;
  let stale = 0;

  transport.onMessage((datagram, fromPort) => {
    if (fromPort !== 0) return; // only the kernel answers
    let at = 0;
    while (at + NLMSG_HDRLEN <= datagram.length) {
      const len = datagram.readUInt32LE(at);
      if (len < NLMSG_HDRLEN || at + len > datagram.length) break;
      const type = datagram.readUInt16LE(at + 4);
      const seq = datagram.readUInt32LE(at + 8);
      const owner = ownerOf(seq);
      if (owner) owner.onReply(type, seq, datagram.subarray(at + NLMSG_HDRLEN, at + len));
      else stale++;
      at += (len + 3) & ~3;
    }
  });
  transport.onError((err) => {
    for (const r of [...inFlight]) r.abort(new NftBatchError(`netlink socket error while waiting for the kernel (${err.message}): the batch may or may not be applied`, 'ECONNRESET', null, [], 'unknown'));
  });

  /**
   * Sends one datagram when the queue reaches it and feeds the replies of its sequence
   * numbers to `start`'s handler until it settles, or the timeout does.
   */
  function request<T>(datagram: Buffer, timeoutMs: number, start: (settle: Settle<T>) => Omit<InFlight, 'abort'>): Promise<T> {
    const run = () =>
      new Promise<T>((resolve, reject) => {
        if (closed) return reject(closedError());
        let timer: NodeJS.Timeout | undefined;
        let settled = false;
        const settle: Settle<T> = (r) => {
          if (settled) return;
          settled = true;
          clearTimeout(timer);
          inFlight.delete(self);
          if (inFlight.size === 0) transport.hold(false);
          if ('ok' in r) resolve(r.ok);
          else reject(r.err);
        };
        const self: InFlight = { ...start(settle), abort: (err) => settle({ err }) };
        inFlight.add(self);
        transport.hold(true);
        transport.send(datagram, (err) => {
          if (err) settle({ err: new NftBatchError(`sendmsg: ${err.message}`, err.code ?? 'EIO', null, [], false) });
        });
        // Started after send(): sendmsg() runs the kernel's whole batch before it returns, so
        // a huge batch does not eat the timeout while its replies already wait in the queue.
        if (!settled) timer = setTimeout(() => settle({ err: new NftBatchError(`no complete answer from the kernel within ${timeoutMs} ms: the batch may or may not be applied`, 'ETIMEDOUT', null, [], 'unknown') }), timeoutMs);
      });
    if (options.pipelined) return run();
    const result = queue.then(run, run);
    queue = result.catch(() => undefined);
    return result;
  }

  const ownsRange = (first: number, last: number) => (seq: number) => seqInRange(seq, first, last);
  const tooLarge = (what: string) => new NftBatchError(`${what}: nothing sent (use nft -f)`, 'EMSGSIZE', null, [], false);

  return {
    maxBatchBytes: batchLimit(transport.maxDatagramBytes, transport.recvBufferBytes),
    get staleReplies() {
      return stale;
    },
    batchBytes: (ops) => elementBatchBytes(ops),

    commit(ops, commitOptions = {}) {
      if (closed) return Promise.reject(closedError());
      let batch: EncodedBatch;
      try {
        // Encoded now, so that a malformed or oversized batch fails at once and sends nothing.
        batch = encodeElementBatch(ops, { firstSeq: nextSeq, portId: transport.portId, ifGeneration: commitOptions.ifGeneration });
      } catch (err) {
        return Promise.reject(err);
      }
      if (batch.markerSeq === null) return Promise.resolve({ generation: null, messages: 0, bytes: 0 });
      if (commitOptions.maxBytes !== undefined && batch.datagram.length > commitOptions.maxBytes) {
        return Promise.reject(tooLarge(`batch of ${batch.datagram.length} bytes exceeds the ${commitOptions.maxBytes}-byte limit asked for`));
      }
      if (batch.datagram.length > transport.maxDatagramBytes) {
        return Promise.reject(tooLarge(`batch of ${batch.datagram.length} bytes exceeds the ${transport.maxDatagramBytes}-byte netlink datagram limit (SO_SNDBUF - 32)`));
      }
      if (batch.worstReplyBytes > transport.recvBufferBytes) {
        return Promise.reject(tooLarge(`batch of ${batch.datagram.length} bytes in ${batch.messages} messages could draw ${batch.worstReplyBytes} bytes of error replies, more than the ${transport.recvBufferBytes}-byte receive buffer`));
      }
      allocate(((batch.endSeq - batch.beginSeq) >>> 0) + 1);
      const { beginSeq, markerSeq, opBySeq, acked } = batch;
      return request<CommitResult>(batch.datagram, commitOptions.timeoutMs ?? defaultTimeoutMs, (settle) => {
        const answered = new Set<number>();
        const failures: NftOpFailure[] = [];
        let generation: number | null = null;
        const fail = () => {
          const first = (failures.find((f) => f.opIndex !== null) ?? failures[0]) as NftOpFailure;
          const more = failures.length > 1 ? ` (${failures.length} failures in all)` : '';
          const what = first.opIndex === null ? 'the batch as a whole' : `operation ${first.opIndex} (${describeOp(ops[first.opIndex] as NftBatchOp)})`;
          const hint = first.code === 'ERESTART' ? `: the ruleset generation is no longer ${commitOptions.ifGeneration}` : '';
          settle({ err: new NftBatchError(`nftables refused ${what}: ${first.code}${hint}${more}; nothing of the batch was applied`, first.code, first.opIndex, failures, false) });
        };
        return {
          owns: ownsRange(beginSeq, batch.endSeq),
          onReply(type, seq, payload) {
            if (type === ((NFNL_SUBSYS_NFTABLES << 8) | NFT_MSG_NEWGEN) && seq === markerSeq) {
              generation = generationOf(payload);
              return;
            }
            if (type !== NLMSG_ERROR || payload.length < 4) return;
            const errno = -payload.readInt32LE(0);
            if (errno !== 0) {
              const failure = { opIndex: opBySeq.get(seq) ?? null, errno, code: errnoName(errno) };
              // Refused before any operation ran (an error on BATCH_BEGIN: EPERM, EINVAL,
              // ERESTART for ifGeneration), or out of memory (the kernel then drops every
              // other reply): nothing more will come.
              if (seq === beginSeq || errno === os.constants.errno.ENOMEM) {
                failures.push(failure);
                return fail();
              }
              // A failed commit (after every message passed) is reported on the first message
              // (our marker), before its own ack: the first answer of a sequence number counts.
              if (!answered.has(seq)) failures.push(failure);
            }
            if (acked.has(seq)) answered.add(seq);
            if (answered.size < acked.size) return;
            if (failures.length > 0) fail();
            else settle({ ok: { generation, messages: batch.messages, bytes: batch.datagram.length } });
          },
        };
      });
    },

    generation() {
      if (closed) return Promise.reject(closedError());
      const seq = allocate(1);
      const b = new MessageBuilder();
      b.endMessage(b.beginMessage((NFNL_SUBSYS_NFTABLES << 8) | NFT_MSG_GETGEN, NLM_F_REQUEST, seq, transport.portId, 0, 0));
      return request<number>(b.result(), defaultTimeoutMs, (settle) => ({
        owns: (s) => s === seq,
        onReply(type, _seq, payload) {
          if (type === ((NFNL_SUBSYS_NFTABLES << 8) | NFT_MSG_NEWGEN)) {
            const id = generationOf(payload);
            settle(id === null ? { err: new NftBatchError('NFT_MSG_NEWGEN without a generation id', 'EPROTO', null, [], false) } : { ok: id });
          } else if (type === NLMSG_ERROR && payload.length >= 4 && payload.readInt32LE(0) !== 0) {
            const code = errnoName(-payload.readInt32LE(0));
            settle({ err: new NftBatchError(`NFT_MSG_GETGEN: ${code}`, code, null, [], false) });
          }
        },
      }));
    },

    close() {
      if (closed) return;
      closed = true;
      for (const r of [...inFlight]) r.abort(new NftBatchError('nft element writer closed while waiting for the kernel: the batch may or may not be applied', 'ECONNRESET', null, [], 'unknown'));
      transport.close();
    },
  };
}

/** NFTA_GEN_ID of an NFT_MSG_NEWGEN payload (after its nfgenmsg). */
function generationOf(payload: Buffer): number | null {
  let at = 4;
  while (at + 4 <= payload.length) {
    const len = payload.readUInt16LE(at);
    if (len < 4) break;
    if ((payload.readUInt16LE(at + 2) & 0x3fff) === NFTA_GEN_ID && len >= 8) return payload.readUInt32BE(at + 4);
    at += (len + 3) & ~3;
  }
  return null;
}
