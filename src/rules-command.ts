/**
 * `nftfarm rules`: the ruleset the reconciler would apply now, as one `nft -f` file. Reads the
 * database (read-only) and the host's interfaces and ARP table; changes nothing.
 */
import fs from 'node:fs';
import Database from 'better-sqlite3';
import type { Config } from './config.js';
import { readMigrations } from './store/db.js';
import { Store } from './store/store.js';
import { openHostNetwork } from './dataplane/netlink/host-network.js';
import { desiredState, isRendered } from './reconcile/desired.js';
import { renderFarm } from './reconcile/farm-render.js';
import { assembleTables } from './reconcile/assemble.js';
import { renderTableText } from './dataplane/nft/objects.js';
import { NeighborTable } from './dataplane/neighbors.js';
import { pino } from 'pino';

export async function printRules(config: Config): Promise<number> {
  if (!fs.existsSync(config.dbPath)) {
    process.stderr.write(`nftfarm: no database at ${config.dbPath} (start 'nftfarm serve' once, or pass --db)\n`);
    return 1;
  }
  const db = new Database(config.dbPath, { readonly: true, fileMustExist: true });
  const version = db.pragma('user_version', { simple: true }) as number;
  if (version !== readMigrations().length) {
    db.close();
    process.stderr.write(`nftfarm: the database schema is version ${version}, this nftfarm expects ${readMigrations().length}; run 'nftfarm serve' to migrate it\n`);
    return 1;
  }
  const store = new Store(db);
  const net = openHostNetwork();
  try {
    const interfaces = await net.listInterfaces();
    // The same MAC answers as the reconciler's, without remembering anything (read-only).
    const memory = { knownNeighbors: () => store.knownNeighbors(), rememberNeighbor: () => {} };
    const neighbors = new NeighborTable(net, memory, pino({ level: 'silent' }));
    await neighbors.refresh(interfaces);
    const state = desiredState(store.snapshot(), { interfaces, macOf: neighbors.macLookup(interfaces) });
    const lines = [`# nftfarm ruleset for store generation ${state.generation}`];
    for (const farm of state.farms) {
      const note = !farm.running ? 'stopped: no rules' : (farm.problem ?? `rendered on ${farm.iface?.name}`);
      lines.push(`# farm ${farm.name} (id ${farm.farmId}): ${note}`);
      for (const b of farm.backends) if (farm.running && b.reason) lines.push(`#   backend ${b.id} ${b.ip}: not used: ${b.reason}`);
    }
    const { netdev, ip } = assembleTables(state.farms.filter(isRendered).map(renderFarm));
    process.stdout.write(`${lines.join('\n')}\n`);
    process.stdout.write(netdev ? renderTableText(netdev) : '# no farm needs rules: nftfarm keeps no table in the kernel\n');
    if (ip) process.stdout.write(`\n${renderTableText(ip)}`);
    return 0;
  } finally {
    net.close();
    store.close();
  }
}
