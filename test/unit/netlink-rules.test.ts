/**
 * The farm-chain rules compiled to netlink expressions (src/dataplane/nft/netlink-rules.ts)
 * and their encoding in a batch. test/netns/nft-elements.test.ts holds the kernel's listing of
 * these chains equal to nft's for the same text; here: which texts compile, the expressions,
 * the messages (one ACK per chain) and their size.
 */
import t from 'tap';
import os from 'node:os';
import { compileRule } from '../../src/dataplane/nft/netlink-rules.js';
import { elementBatchBytes, encodeElementBatch, type NftChainOp } from '../../src/dataplane/netlink/nft-elements.js';

const BUCKET = 'meta mark 0 meta mark set jhash ip saddr . ip daddr . th sport . th dport mod 64 seed 0x6e667466 offset 0x805a9000';
const hostBytes = (n: number) => {
  const b = Buffer.alloc(4);
  if (os.endianness() === 'LE') b.writeUInt32LE(n);
  else b.writeUInt32BE(n);
  return b;
};

t.test('the farm-chain shapes compile to the expressions nft sends', async (t) => {
  t.same(compileRule('jump pin_dsr_tcp_eth0'), [{ expr: 'verdict', verdict: { verdict: 'jump', chain: 'pin_dsr_tcp_eth0' } }]);
  t.same(compileRule('goto count_drop'), [{ expr: 'verdict', verdict: { verdict: 'goto', chain: 'count_drop' } }]);
  t.same(compileRule('meta mark set 1449 jump count_drop'), [
    { expr: 'immediate', dreg: 1, data: hostBytes(1449) },
    { expr: 'meta-set', key: 3, sreg: 1 },
    { expr: 'verdict', verdict: { verdict: 'jump', chain: 'count_drop' } },
  ]);
  t.same(compileRule(BUCKET), [
    { expr: 'meta-load', key: 3, dreg: 1 },
    { expr: 'cmp', sreg: 1, op: 0, data: Buffer.alloc(4) },
    { expr: 'meta-load', key: 1, dreg: 1 },
    { expr: 'cmp', sreg: 1, op: 0, data: Buffer.from([8, 0]) },
    { expr: 'payload-load', dreg: 2, base: 1, offset: 12, len: 4 },
    { expr: 'payload-load', dreg: 13, base: 1, offset: 16, len: 4 },
    { expr: 'payload-load', dreg: 14, base: 2, offset: 0, len: 2 },
    { expr: 'payload-load', dreg: 15, base: 2, offset: 2, len: 2 },
    { expr: 'jhash', sreg: 2, dreg: 1, len: 16, modulus: 64, seed: 0x6e667466, offset: 0x805a9000 },
    { expr: 'meta-set', key: 3, sreg: 1 },
  ]);
});

t.test("a stateless_dnat farm's replies: the source rewritten, both checksums fixed, accepted", async (t) => {
  t.same(compileRule('ip saddr set 10.250.0.100 accept'), [
    { expr: 'meta-load', key: 1, dreg: 1 },
    { expr: 'cmp', sreg: 1, op: 0, data: Buffer.from([8, 0]) },
    { expr: 'immediate', dreg: 1, data: Buffer.from([10, 250, 0, 100]) },
    { expr: 'payload-write', sreg: 1, base: 1, offset: 12, len: 4, csumType: 1, csumOffset: 10, csumFlags: 1 },
    { expr: 'verdict', verdict: { verdict: 'accept' } },
  ]);
  t.equal(compileRule('ip saddr set 10.250.0.256 accept'), null, 'not an address');
  t.equal(compileRule('ip saddr set 10.250.0.100 th sport set 80 accept'), null, 'ports too: nft');
});

t.test('anything else is left to nft', async (t) => {
  for (const text of [
    'jump',
    'jump a b',
    'accept',
    'meta mark set 4294967296 jump count_drop',
    'meta mark set 0x10 jump count_drop',
    BUCKET.replace('jhash ip saddr', 'jhash ip6 saddr'),
    BUCKET.replace('mod 64', 'mod 0'),
    BUCKET.replace(' offset 0x805a9000', ''),
    'meta mark 0 meta mark set numgen inc mod 64 offset 0x805a9000',
    `${BUCKET} counter`,
    'jump pin_dsr_tcp_eth0 # comment',
  ]) {
    t.equal(compileRule(text), null, text);
  }
});

t.test('a chain operation: NEWCHAIN and a NEWRULE each, an ACK asked for on the last one only', async (t) => {
  const rules = ['jump pin_x', BUCKET, 'jump serve_x', 'meta mark set 7 jump count_drop'].map((r) => compileRule(r)!);
  const op: NftChainOp = { kind: 'chain', family: 'netdev', table: 'nftfarm', chain: 'farm_7', rules };
  const empty: NftChainOp = { ...op, chain: 'farm_8', rules: [] };
  const batch = encodeElementBatch([op, empty], { firstSeq: 100 });
  const messages: { type: number; flags: number; seq: number }[] = [];
  for (let at = 0; at < batch.datagram.length; ) {
    const len = batch.datagram.readUInt32LE(at);
    messages.push({ type: batch.datagram.readUInt16LE(at + 4), flags: batch.datagram.readUInt16LE(at + 6), seq: batch.datagram.readUInt32LE(at + 8) });
    at += (len + 3) & ~3;
  }
  const NEWCHAIN = 0x0a03;
  const NEWRULE = 0x0a06;
  t.same(messages.map((m) => m.type), [0x10, 0x0a00, NEWCHAIN, NEWRULE, NEWRULE, NEWRULE, NEWRULE, NEWCHAIN, 0x11], 'begin, marker, chain and 4 rules, the empty chain, end');
  const ack = (m: { flags: number }) => (m.flags & 0x4) !== 0;
  t.same(messages.slice(2, 8).map(ack), [false, false, false, false, true, true], "the last rule's message and the ruleless chain's ask for an ACK");
  t.ok((messages[3]!.flags & 0x800) !== 0 && (messages[3]!.flags & 0x400) !== 0, 'rules are appended (NLM_F_APPEND | NLM_F_CREATE), as nft adds them');
  t.same([...batch.acked].sort((a, b) => a - b), [messages[1]!.seq, messages[6]!.seq, messages[7]!.seq], 'the marker and one message per chain are answered on success');
  t.equal(batch.opBySeq.get(messages[3]!.seq), 0, 'a failing rule names its chain operation');
  t.equal(batch.opBySeq.get(messages[7]!.seq), 1);
  t.equal(batch.messages, 6);
  t.equal(elementBatchBytes([op, empty]), batch.datagram.length, 'its size counted as encoded');
});
