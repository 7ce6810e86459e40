/**
 * The reconciler's access to the kernel: the writer (nft, and netlink batches for elements),
 * and cheap netlink reads of what nftfarm's tables hold (names and rule counts, sessions, the
 * ruleset generation). One reader socket, kept open.
 */
import type { Logger } from 'pino';
import type { KernelAccess } from '../reconcile/reconciler.js';
import { TABLES } from '../reconcile/tables.js';
import { openNftObjectReader, type NftObjectReader } from './netlink/nft-objects.js';
import { readSessions } from './sessions.js';
import { createKernelWriter, type ElementWriter, type KernelWriter } from './kernel-writer.js';
import type { NftRunner } from './nft/runner.js';
import { transactionText } from './nft/transaction.js';
import { netlinkElementWriter } from './nft/netlink-elements.js';

/**
 * `elements`: the netlink writer for element-only transactions (opened here by default);
 * null: every transaction goes through nft.
 */
export function kernelAccess(nft: NftRunner, elements: ElementWriter | null = netlinkElementWriter(), log?: Logger, reader: NftObjectReader = openNftObjectReader()): KernelAccess & { close(): void } {
  return {
    writer: createKernelWriter(nft, elements ?? undefined, log),
    inventory: (table) => reader.inventory(TABLES[table].family, TABLES[table].name),
    generation: () => reader.generation(),
    sessions: (table, map, layout) => readSessions(reader, TABLES[table].family, TABLES[table].name, map, layout),
    close: () => {
      reader.close();
      elements?.close();
    },
  };
}

/** No kernel (--dry-run): transactions are logged, never applied; the kernel looks empty. */
export function dryRunKernel(log: Logger): KernelAccess & { close(): void } {
  const writer: KernelWriter = {
    async apply(operations) {
      log.info({ script: transactionText(operations) }, 'dry run: not applying the transaction');
      return { via: 'nft' };
    },
    async load(operations) {
      log.info({ script: transactionText(operations) }, 'dry run: not applying the transaction');
    },
    async check() {},
  };
  return { writer, inventory: async () => null, generation: async () => 0, sessions: async () => null, close: () => {} };
}
