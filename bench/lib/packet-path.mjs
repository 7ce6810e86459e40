#!/usr/bin/env node
/**
 * The path one packet of an established flow takes through nftfarm's netdev table, walked on
 * the kernel's own dump (`nft --debug=netlink list table netdev nftfarm`: every rule's
 * expressions and every set's elements as the kernel holds them), expression by expression:
 * loads, comparisons, lookups in the real sets, verdicts. Counts the chains entered, the rules
 * started, the jumps (jump and goto, verdict maps included) and the expressions evaluated
 * until the packet leaves (fwd, accept, drop). Chains are counted per visit: a return to the
 * calling chain is a visit too.
 *
 *   node packet-path.mjs VIP PORT [udp|tcp] [--trace]   (in the load balancer's namespace;
 *   --trace also lists every expression evaluated, as chain #rule: expression)
 *
 * The packet: an established flow to VIP:PORT, taken from the flow map (a pin the traffic
 * left there), as a 64-byte frame; TCP with ACK set. Prints JSON.
 */
import { execFileSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';

const REGS = 20;

/** "0a00fa0a" (how libnftnl prints 4 bytes: a little-endian word) -> those 4 bytes. */
function wordBytes(word) {
  const n = Number.parseInt(word.replace(/^0x/, ''), 16) >>> 0;
  return [n & 0xff, (n >>> 8) & 0xff, (n >>> 16) & 0xff, (n >>> 24) & 0xff];
}
const wordsBytes = (words) => words.flatMap(wordBytes);

/** Register number as printed -> byte offset in the register file (NFT_REG_1..4: 16 bytes; NFT_REG32_00 = 8). */
const regOffset = (r) => (r >= 8 ? (r - 8) * 4 : (r - 1) * 16);

/** Parses the debug dump into sets (elements as byte arrays) and chains (rules as expression lines). */
export function parseDump(text) {
  const sets = new Map();
  const chains = new Map();
  let set = null;
  let rule = null;
  for (const line of text.split('\n')) {
    if (line.startsWith('table ')) break; // the listing that follows the dump
    let m = /^\S+ \S+ @(\S+)$/.exec(line);
    if (m) {
      set = { name: m[1], elements: [] };
      sets.set(m[1], set);
      rule = null;
      continue;
    }
    m = /^\s+element ((?:[0-9a-f]{8} ?)+)\s*:\s*(.*?)\s*\[end\]/.exec(line);
    if (m && set) {
      const key = wordsBytes(m[1].trim().split(/\s+/));
      const rest = m[2].trim();
      const verdict = /^(jump|goto) -> (\S+)/.exec(rest);
      const data = verdict ? null : rest.split(/\s+/).slice(0, -1); // the last word is the element's flags
      set.elements.push({ key, data: data && data.length > 0 ? wordsBytes(data) : null, verdict: verdict ? { kind: verdict[1], chain: verdict[2] } : /^(accept|drop)\b/.exec(rest)?.[1] ?? null });
      continue;
    }
    m = /^\S+ \S+ (\S+) \d+(?: \d+)?$/.exec(line);
    if (m) {
      set = null;
      rule = [];
      if (!chains.has(m[1])) chains.set(m[1], []);
      chains.get(m[1]).push(rule);
      continue;
    }
    m = /^\s+\[ (.*) \]$/.exec(line);
    if (m && rule) rule.push(m[1]);
  }
  return { sets, chains };
}

/** A 64-byte frame of the flow (UDP, or TCP with only ACK set), as link, network and transport headers. */
export function frame({ saddr, daddr, sport, dport, proto }) {
  const ip = (a) => a.split('.').map(Number);
  const link = [0x02, 0, 0x0a, 0xfa, 0, 0x02, 0x02, 0, 0x0a, 0xfa, 0, 0x0a, 0x08, 0x00];
  const l4 = proto === 'tcp' ? 6 : 17;
  const network = [0x45, 0, 0, 46, 0, 1, 0x40, 0, 64, l4, 0, 0, ...ip(saddr), ...ip(daddr)];
  const ports = [sport >> 8, sport & 0xff, dport >> 8, dport & 0xff];
  const transport = proto === 'tcp' ? [...ports, 0, 0, 0, 1, 0, 0, 0, 1, 0x50, 0x10, 0xff, 0xff, 0, 0, 0, 0] : [...ports, 0, 26, 0, 0];
  return { link, network, transport, l4, mark: 0, pkttype: 0, protocol: [0x08, 0x00], iiftype: [1, 0] };
}

/** Walks the packet from `base` (the ingress chain) until a final verdict. */
export function walk(dump, base, pkt, trace = null) {
  const regs = new Uint8Array(REGS * 4);
  const store = (r, bytes) => {
    const at = regOffset(r);
    const padded = [...bytes];
    while (padded.length % 4) padded.push(0);
    regs.set(padded, at);
  };
  const load = (r, len) => [...regs.subarray(regOffset(r), regOffset(r) + len)];
  const headers = { link: pkt.link, network: pkt.network, transport: pkt.transport };
  const count = { chains: 0, rules: 0, jumps: 0, expressions: 0 };
  const path = [];
  const stack = [];
  let chain = base;
  let index = 0;
  count.chains++;
  path.push(chain);
  const lookupSet = (name, r) => {
    const set = dump.sets.get(name);
    if (!set) throw new Error(`no set ${name} in the dump`);
    const len = set.elements[0]?.key.length ?? 0;
    const key = load(r, len);
    return set.elements.find((e) => e.key.every((b, i) => b === key[i])) ?? null;
  };
  for (let guard = 0; guard < 10_000; guard++) {
    const rules = dump.chains.get(chain);
    if (!rules) throw new Error(`no chain ${chain} in the dump`);
    if (index >= rules.length) {
      // End of chain: back to the caller, or the base chain's policy (accept).
      if (stack.length === 0) return { verdict: 'accept (policy)', ...count, path };
      ({ chain, index } = stack.pop());
      count.chains++;
      path.push(`return ${chain}`);
      continue;
    }
    const rule = rules[index++];
    count.rules++;
    let verdict = null;
    let broke = false;
    for (const e of rule) {
      count.expressions++;
      if (trace) trace.push(`${chain} #${index}: ${e}`);
      let m;
      if ((m = /^meta load (\S+) => reg (\d+)$/.exec(e))) {
        const v = { pkttype: [pkt.pkttype], protocol: pkt.protocol, l4proto: [pkt.l4], iiftype: pkt.iiftype, mark: [pkt.mark & 0xff, (pkt.mark >>> 8) & 0xff, (pkt.mark >>> 16) & 0xff, pkt.mark >>> 24] }[m[1]];
        if (!v) throw new Error(`meta ${m[1]} not simulated`);
        store(Number(m[2]), v);
      } else if ((m = /^payload load (\d+)b @ (link|network|transport) header \+ (\d+) => reg (\d+)$/.exec(e))) {
        const h = headers[m[2]];
        store(Number(m[4]), h.slice(Number(m[3]), Number(m[3]) + Number(m[1])));
      } else if ((m = /^cmp (eq|neq|lt|lte|gt|gte) reg (\d+) ((?:0x[0-9a-f]{8} ?)+)$/.exec(e))) {
        const want = wordsBytes(m[3].trim().split(/\s+/));
        const have = load(Number(m[2]), want.length);
        let c = 0;
        for (let i = 0; i < want.length && c === 0; i++) c = have[i] - want[i];
        const ok = { eq: c === 0, neq: c !== 0, lt: c < 0, lte: c <= 0, gt: c > 0, gte: c >= 0 }[m[1]];
        if (!ok) broke = true;
      } else if ((m = /^bitwise reg (\d+) = \( reg (\d+) & ((?:0x[0-9a-f]{8} ?)+)\) \^ ((?:0x[0-9a-f]{8} ?)+)$/.exec(e))) {
        const mask = wordsBytes(m[3].trim().split(/\s+/));
        const xor = wordsBytes(m[4].trim().split(/\s+/));
        const v = load(Number(m[2]), mask.length).map((b, i) => (b & mask[i]) ^ xor[i]);
        store(Number(m[1]), v);
      } else if ((m = /^byteorder reg (\d+) = hton\(reg (\d+), (\d+), (\d+)\)$/.exec(e))) {
        const size = Number(m[3]);
        const v = load(Number(m[2]), Number(m[4]));
        const out = [];
        for (let i = 0; i < v.length; i += size) out.push(...v.slice(i, i + size).reverse());
        store(Number(m[1]), out);
      } else if ((m = /^lookup reg (\d+) set (\S+)(?: dreg (\d+))? (0x[0-9a-f]+)$/.exec(e))) {
        const hit = lookupSet(m[2], Number(m[1]));
        const inverted = (Number.parseInt(m[4], 16) & 1) === 1;
        if (!hit === !inverted) broke = true;
        else if (hit && m[3] === '0') verdict = hit.verdict;
        else if (hit && m[3] !== undefined) store(Number(m[3]), hit.data);
      } else if ((m = /^dynset (update|add|delete) reg_key (\d+) set (\S+)/.exec(e))) {
        // An established flow's pin exists: update refreshes it, add finds it; both go on.
        if (m[1] !== 'delete' && !lookupSet(m[3], Number(m[2]))) throw new Error(`the flow has no entry in ${m[3]}: not an established flow`);
      } else if ((m = /^meta set mark with reg (\d+)$/.exec(e))) {
        const b = load(Number(m[1]), 4);
        pkt.mark = (b[0] | (b[1] << 8) | (b[2] << 16) | (b[3] << 24)) >>> 0;
      } else if ((m = /^immediate reg 0 (jump|goto) -> (\S+)$/.exec(e))) {
        verdict = { kind: m[1], chain: m[2] };
      } else if ((m = /^immediate reg 0 (accept|drop|return|continue)$/.exec(e))) {
        verdict = m[1];
      } else if ((m = /^immediate reg (\d+) ((?:0x[0-9a-f]{8} ?)+)$/.exec(e))) {
        store(Number(m[1]), wordsBytes(m[2].trim().split(/\s+/)));
      } else if ((m = /^payload write reg (\d+) => (\d+)b @ (link|network|transport) header \+ (\d+)/.exec(e))) {
        const h = headers[m[3]];
        const v = load(Number(m[1]), Number(m[2]));
        for (let i = 0; i < v.length; i++) h[Number(m[4]) + i] = v[i];
      } else if (/^counter /.test(e)) {
        // counts, goes on
      } else if (/^fwd /.test(e)) {
        verdict = 'fwd';
      } else {
        throw new Error(`expression not simulated: ${e}`);
      }
      if (broke || verdict) break;
    }
    if (broke || verdict === null || verdict === 'continue') continue;
    if (typeof verdict === 'object') {
      count.jumps++;
      count.chains++;
      path.push(`${verdict.kind} ${verdict.chain}`);
      if (verdict.kind === 'jump') stack.push({ chain, index });
      chain = verdict.chain;
      index = 0;
      continue;
    }
    if (verdict === 'return') {
      if (stack.length === 0) return { verdict: 'accept (policy)', ...count, path };
      ({ chain, index } = stack.pop());
      count.chains++;
      path.push(`return ${chain}`);
      continue;
    }
    return { verdict, ...count, path };
  }
  throw new Error('no verdict after 10,000 rules');
}

/** An established flow to vip:port of the protocol, from the flow map's elements. */
export function establishedFlow(dump, vip, port, proto) {
  const flows = dump.sets.get(`flows_${proto}`);
  const vipBytes = vip.split('.').map(Number);
  const portBytes = [port >> 8, port & 0xff];
  const e = flows?.elements.find((x) => x.key.slice(4, 8).every((b, i) => b === vipBytes[i]) && x.key[12] === portBytes[0] && x.key[13] === portBytes[1]);
  if (!e) return null;
  return { saddr: e.key.slice(0, 4).join('.'), daddr: vip, sport: (e.key[8] << 8) | e.key[9], dport: port, proto };
}

async function main() {
  const [vip, port, proto = 'udp'] = process.argv.slice(2);
  const text = execFileSync('nft', ['--debug=netlink', 'list', 'table', 'netdev', 'nftfarm'], { encoding: 'utf8', maxBuffer: 1 << 28 });
  const dump = parseDump(text);
  const flow = establishedFlow(dump, vip, Number(port), proto);
  if (!flow) throw new Error(`no pinned flow to ${vip}:${port}/${proto} in flows_${proto}`);
  const base = [...dump.chains.keys()].find((c) => c.startsWith('ingress_'));
  const trace = process.argv.includes('--trace') ? [] : null;
  const result = walk(dump, base, frame(flow), trace);
  console.log(JSON.stringify({ flow, ...result }));
  if (trace) console.log(trace.join('\n'));
}

if (process.argv[1] === fileURLToPath(import.meta.url)) await main();
