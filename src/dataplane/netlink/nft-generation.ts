/**
 * The kernel's nftables ruleset generation: a counter the kernel bumps on every committed
 * transaction, by anyone (one `nft -f` file is one commit). Reading it is
 * one small netlink request, so the reconciler can check for drift often and list the
 * (large) ruleset only when someone else has changed something.
 */
import { createNetlink } from 'netlink';

const NETLINK_NETFILTER = 12;
const NFNL_SUBSYS_NFTABLES = 10;
const NFT_MSG_GETGEN = 16;
const NFTA_GEN_ID = 1;
/** struct nfgenmsg: family AF_UNSPEC, version NFNETLINK_V0, res_id 0. */
const NFGENMSG = Buffer.from([0, 0, 0, 0]);

export interface RulesetGeneration {
  id: number;
}

export async function readRulesetGeneration(): Promise<RulesetGeneration> {
  const socket = createNetlink(NETLINK_NETFILTER);
  try {
    const [messages] = await socket.request((NFNL_SUBSYS_NFTABLES << 8) | NFT_MSG_GETGEN, NFGENMSG, { timeout: 5000 });
    const reply = messages[0];
    if (!reply) throw new Error('no answer to NFT_MSG_GETGEN');
    const attrs = parseAttributes(Buffer.from(reply.data).subarray(NFGENMSG.length));
    const id = attrs.get(NFTA_GEN_ID);
    if (!id) throw new Error('NFT_MSG_GETGEN answer without a generation id');
    return { id: id.readUInt32BE(0) };
  } finally {
    socket.socket.close();
  }
}

/** Netlink attributes: u16 length (header included), u16 type, value padded to 4 bytes. */
function parseAttributes(data: Buffer): Map<number, Buffer> {
  const attrs = new Map<number, Buffer>();
  let offset = 0;
  while (offset + 4 <= data.length) {
    const length = data.readUInt16LE(offset);
    if (length < 4) break;
    // The top bits are the nested/byte-order flags, not part of the type.
    attrs.set(data.readUInt16LE(offset + 2) & 0x3fff, data.subarray(offset + 4, offset + length));
    offset += (length + 3) & ~3;
  }
  return attrs;
}
