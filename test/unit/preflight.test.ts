// Issue 11, finding 6: what `serve` asks of the process before it starts. A non-root user
// with CAP_NET_ADMIN (ambient) is enough; the old check used access(2), which ignores
// capabilities for a non-root process, and refused it.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import t from 'tap';
import { CAP_NET_ADMIN, CAP_NET_RAW, parseStatus, type ProcessCapabilities } from '../../src/dataplane/capabilities.js';
import { KernelAccessError, preflight } from '../../src/dataplane/preflight.js';
import type { NftRunner } from '../../src/dataplane/nft/runner.js';

const nft: NftRunner = { apply: async () => {}, run: async () => '' };
const bit = (...caps: number[]) => caps.reduce((set, c) => set | (1n << BigInt(c)), 0n);

t.test('parseStatus reads the effective uid and the effective and ambient sets', async (t) => {
  const status = 'Name:\tnode\nUid:\t0\t64990\t64990\t64990\nGid:\t0\t0\t0\t0\nCapInh:\t0000000000003000\nCapPrm:\t0000000000003000\nCapEff:\t0000000000003000\nCapBnd:\t0000000000003000\nCapAmb:\t0000000000001000\n';
  t.strictSame(parseStatus(status), { uid: 64990, effective: bit(CAP_NET_ADMIN, CAP_NET_RAW), ambient: bit(CAP_NET_ADMIN) });
});

t.test('preflight', async (t) => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'nftfarm-preflight-'));
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));
  const probe = path.join(dir, 'forwarding');
  fs.writeFileSync(probe, '0\n');
  const run = (caps: ProcessCapabilities, sysctl = probe) => preflight(nft, caps, sysctl);

  t.strictSame(await run({ uid: 0, effective: 0n, ambient: 0n }), [], 'root: nothing to say');
  t.strictSame(await run({ uid: 64990, effective: bit(CAP_NET_ADMIN, CAP_NET_RAW), ambient: bit(CAP_NET_ADMIN, CAP_NET_RAW) }), [], 'non-root with both ambient');
  t.match(await run({ uid: 64990, effective: bit(CAP_NET_ADMIN), ambient: bit(CAP_NET_ADMIN) }), [/CAP_NET_RAW: check_ping/], 'no CAP_NET_RAW: a warning');
  await t.rejects(run({ uid: 64990, effective: 0n, ambient: 0n }), { message: /uid 64990 without CAP_NET_ADMIN/ });
  await t.rejects(run({ uid: 64990, effective: bit(CAP_NET_ADMIN), ambient: 0n }), { message: /not as an ambient capability/ });
  const missing = await run({ uid: 0, effective: 0n, ambient: 0n }, path.join(dir, 'nope')).catch((e: unknown) => e);
  t.ok(missing instanceof KernelAccessError);
  t.match((missing as Error).message, /cannot write .*nope \(ENOENT\)/);
});
