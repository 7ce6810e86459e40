#!/usr/bin/env node
/** Runs inside the load balancer's namespace: prints the element count of each of nftfarm's selection maps, and of all their sets, as JSON. */
import { openNftObjectReader } from '../../dist/dataplane/netlink/nft-objects.js';

// A 640,000-element dump takes seconds, more on a busy machine.
const reader = openNftObjectReader({ timeoutMs: 300_000 });
const out = { selection: 0, all: 0 };
for (const [family, table] of [['netdev', 'nftfarm'], ['inet', 'nftfarm']]) {
  const inventory = await reader.inventory(family, table);
  if (!inventory) continue;
  for (const [name, set] of inventory.sets) {
    if (set.dynamic) continue;
    const n = (await reader.setElements(family, table, name))?.length ?? 0;
    out.all += n;
    if (name === 'selection') out.selection += n;
  }
}
reader.close();
console.log(JSON.stringify(out));
