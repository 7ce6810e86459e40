/**
 * Element operations (transaction.ts) as netlink batches: the ElementWriter the kernel writer
 * uses for transactions that only change elements. Element text ("10.250.0.100 . tcp . 80",
 * "jump farm_3", "02:00:0a:fa:00:15") is turned into the writer's typed values by the set's
 * declared types; interval sets and types the writer does not encode are left to nft.
 */
import type { ElementWriter } from '../kernel-writer.js';
import type { ElementOperation, Operation } from './transaction.js';
import { compileRule } from './netlink-rules.js';
import { openSocketProcess } from '../netlink/socket-process.js';
import { createNftElementWriter, nftSet, openNftElementWriter, type NftChainOp, type NftElementOp, type NftElementWriter, type NftFamily, type NftScalarType, type NftType, type NftValue, type NftVerdict } from '../netlink/nft-elements.js';

const SCALARS = new Set<string>(['mark', 'ipv4_addr', 'ipv6_addr', 'ether_addr', 'inet_service', 'inet_proto']);
const NUMERIC = new Set<string>(['mark', 'inet_service']);
/** A batch much larger than this blocks the event loop while the kernel works in sendmsg: kept smaller. */
const BATCH_BYTES = 2 * 1024 * 1024;
/** A first load's batches wait in the socket helper's queue: their timeout covers the wait. */
const LOAD_TIMEOUT_MS = 120_000;

function typeOf(text: string): NftType | null {
  const parts = text.split(' . ');
  if (!parts.every((p) => SCALARS.has(p))) return null;
  return parts.length === 1 ? (parts[0] as NftScalarType) : (parts as NftScalarType[]);
}

function valueOf(type: NftType, text: string | number): NftValue {
  if (typeof text === 'number') return text;
  const parse = (t: NftScalarType, v: string) => (NUMERIC.has(t) ? Number(v) : v);
  if (typeof type === 'string') return parse(type, text);
  const parts = text.split(' . ');
  return type.map((t, i) => parse(t, parts[i] ?? ''));
}

function verdictOf(text: string | number): NftVerdict {
  const [verdict, chain] = String(text).split(' ');
  return verdict === 'jump' || verdict === 'goto' ? { verdict, chain: chain! } : { verdict: verdict as 'accept' | 'drop' | 'continue' | 'return' };
}

/** The operation for the writer; null when it must go through nft. */
function convert(o: ElementOperation): NftElementOp | null {
  if (o.set.body.includes('flags interval')) return null;
  const [keyText, dataText] = o.set.typeKey.split(' : ') as [string, string | undefined];
  const key = typeOf(keyText);
  const data = dataText === undefined ? undefined : dataText === 'verdict' ? 'verdict' : typeOf(dataText);
  if (!key || data === null) return null;
  const set = nftSet({ family: o.table.family as NftFamily, table: o.table.name, set: o.set.name, key, ...(data ? { data } : {}) });
  switch (o.op) {
    case 'flush-set':
      return set.flush();
    case 'delete-elements':
      return set.delete(o.elements.map((e) => ({ key: valueOf(key, e.key) })));
    case 'add-elements':
      return set.add(o.elements.map((e) => ({ key: valueOf(key, e.key), ...(data === undefined ? {} : { data: data === 'verdict' ? verdictOf(e.value) : valueOf(data, e.value) }) })));
  }
}

/** New plain chains of the netdev table whose every rule compiles, as netlink operations; else null. */
function chainsOf(operations: readonly Operation[]): NftChainOp[] | null {
  const out: NftChainOp[] = [];
  for (const o of operations) {
    if (o.op !== 'add-chain' || o.chain.hook !== undefined || o.table.family !== 'netdev') return null;
    const rules = [];
    for (const text of o.chain.rules) {
      const rule = compileRule(text);
      if (rule === null) return null;
      rules.push(rule);
    }
    out.push({ kind: 'chain', family: 'netdev', table: o.table.name, chain: o.chain.name, rules });
  }
  return out;
}

export function netlinkElementWriter(writer: NftElementWriter = openNftElementWriter()): ElementWriter {
  const converted = new WeakMap<ElementOperation, NftElementOp | null>();
  const opOf = (o: ElementOperation) => {
    if (!converted.has(o)) converted.set(o, convert(o));
    return converted.get(o)!;
  };
  const limit = Math.min(writer.maxBatchBytes, BATCH_BYTES);
  return {
    bytes(o) {
      const op = opOf(o);
      return op === null ? null : writer.batchBytes([op]);
    },
    maxBatchBytes: limit,
    encodable: (operations) => operations.every((o) => opOf(o) !== null),
    async commit(operations) {
      const ops = operations.map(opOf);
      if (ops.some((op) => op === null)) throw new Error('an element operation the netlink writer cannot encode');
      // Encoded once, in commit: a batch over the limit is refused there with nothing sent.
      const result = await writer.commit(ops as NftElementOp[], { maxBytes: limit });
      return { generation: result.generation };
    },
    writeChains(operations) {
      const chains = chainsOf(operations);
      if (chains === null) return null;
      // Sized when encoded: over the limit, it is refused with nothing sent (EMSGSIZE) and nft writes it.
      return writer.commit(chains, { maxBytes: limit }).then(() => undefined);
    },
    generation: () => writer.generation(),
    openLoadWriter: async () => netlinkElementWriter(createNftElementWriter(await openSocketProcess(), { pipelined: true, timeoutMs: LOAD_TIMEOUT_MS })),
    close: () => writer.close(),
  };
}
