/**
 * Applies Transactions to the kernel, each atomically: as one `nft -f` file (nft turns a file
 * into one netlink batch), or, when a transaction only changes set elements and an element
 * writer is given, as one netlink batch of our own, which costs no process start and no nft
 * cache of a huge ruleset (a backend change at 10,000 farms: tens of milliseconds through
 * nft, well under one through the element writer).
 */
import type { Logger } from 'pino';
import type { NftRunner } from './nft/runner.js';
import { isElementOperation, transactionText, type ElementOperation, type Operation } from './nft/transaction.js';

/** Element batches over netlink (nft/netlink-elements.ts). */
export interface ElementWriter {
  /**
   * Applies the element operations as one atomic batch; throws when the kernel refuses it,
   * and with code EMSGSIZE, having sent nothing, when the batch is over maxBatchBytes.
   */
  commit(operations: readonly ElementOperation[]): Promise<{ generation: number | null }>;
  /** Whether it can encode every one of the operations (interval sets and some types it cannot). */
  encodable(operations: readonly ElementOperation[]): boolean;
  /** One operation's size in a batch; null when it cannot be written this way (nft writes it). */
  bytes(operation: ElementOperation): number | null;
  /** The largest batch it sends. */
  readonly maxBatchBytes: number;
  /**
   * Writes new plain chains and their rules (a first load's farm chains) as one atomic batch,
   * when every operation is one and every rule is of a shape it compiles (nft/netlink-rules.ts);
   * null, with nothing sent, when not: nft writes them.
   */
  writeChains?(operations: readonly Operation[]): Promise<void> | null;
  /** The ruleset generation, read over the writer's socket. */
  generation(): Promise<number>;
  /**
   * A writer of the same kind over a socket in a helper process of its own, whose batches are sent
   * one after the other without waiting for this process (for beginLoad). Closed by its user.
   */
  openLoadWriter?(): Promise<ElementWriter>;
  close(): void;
}

export interface KernelWriter {
  /**
   * Applies the operations as one transaction: all or nothing. `generation`: the ruleset
   * generation this commit made, when known (the netlink writer reports it).
   */
  apply(operations: readonly Operation[]): Promise<{ via: 'netlink' | 'nft'; generation?: number | null }>;
  /**
   * A first load into a kernel that holds none of nftfarm's tables: the structure in one
   * transaction, then the elements in batches, the `last` ones at the end (the dispatch
   * maps, so no packet reaches a farm before its elements are in). Not atomic as a whole:
   * until the end, traffic simply finds no farm, as before the load.
   */
  load(operations: readonly Operation[], last: (o: ElementOperation) => boolean): Promise<void>;
  /**
   * A first load written as it is planned, for a kernel that holds none of nftfarm's tables;
   * null when the writer cannot (no element writer, or its helper process did not start): load()
   * then writes it chunk by chunk. On a failure the kernel holds part of it: the caller
   * removes the tables and loads again with load(), which finds what the kernel refuses.
   */
  beginLoad?(): Promise<LoadSession | null>;
  /** Has the kernel check the operations as one transaction and commit nothing; throws as apply would. */
  check(operations: readonly Operation[]): Promise<void>;
}

/**
 * A first load written as it is planned (see KernelWriter.beginLoad): each write queues a
 * chunk's structure and then its elements, and returns without waiting for the kernel, which
 * inserts them in the writer's helper process while this one plans the next chunk. Each batch is a
 * transaction of its own; the load as a whole is not one (as with load()).
 */
export interface LoadSession {
  /**
   * Queues the operations, after everything queued before: structure first, then elements
   * in batches. Structure that nft must write (the tables, hooked chains) waits for every
   * batch before it, then for nft. Returns at once; throws once an earlier write has failed.
   */
  write(operations: readonly Operation[]): Promise<void>;
  /** Waits for every write queued; throws the first failure. Ends the session (its helper process). */
  finish(): Promise<void>;
}

export function createKernelWriter(nft: NftRunner, elements?: ElementWriter, log?: Logger): KernelWriter {
  const viaNft = async (operations: readonly Operation[]) => {
    const script = transactionText(operations);
    if (script !== '') await nft.apply(script);
  };
  return {
    async check(operations) {
      const script = transactionText(operations);
      if (script !== '') await nft.check(script);
    },
    async apply(operations) {
      if (elements && operations.length > 0 && operations.every(isElementOperation) && elements.encodable(operations as ElementOperation[])) {
        try {
          const { generation } = await elements.commit(operations as ElementOperation[]);
          return { via: 'netlink', generation };
        } catch (err) {
          // Too large for one datagram: nothing was sent, nft writes it.
          if (!tooLarge(err)) throw err;
        }
      }
      await viaNft(operations);
      return { via: 'nft' };
    },
    async beginLoad() {
      if (!elements?.openLoadWriter) return null;
      // The helper process starts while the first chunk is planned and its tables written by nft.
      return pipelinedLoad(elements.openLoadWriter(), viaNft, log);
    },
    async load(operations, last) {
      const structure = operations.filter((o) => !isElementOperation(o));
      const body = operations.filter((o): o is ElementOperation => isElementOperation(o) && !last(o));
      const tail = operations.filter((o): o is ElementOperation => isElementOperation(o) && last(o));
      if (!elements) {
        await viaNft(operations);
        return;
      }
      const t0 = performance.now();
      // nft writes the structure in its own process while this one converts and sizes the
      // element batches (CPU work that needs no kernel): they overlap on two cores. Sending
      // elements meanwhile did not: the kernel inserts them inside our sendmsg under the
      // same commit lock nft's batch takes (bench/RESULTS.md, cold start).
      // The farm chains of every chunk after the first (plain chains of compiled rules) go
      // over netlink; the rest, and any chunk that is not only those, through nft.
      const netlinkChains = structure.length > 0 ? (elements.writeChains?.(structure) ?? null) : null;
      const structureWritten = netlinkChains ? netlinkChains.catch((err) => (tooLarge(err) ? viaNft(structure) : Promise.reject(err))) : viaNft(structure);
      let planned: ElementOperation[][];
      try {
        planned = [...batches(body, elements), ...batches(tail, elements)];
      } finally {
        await structureWritten;
      }
      const structureMs = performance.now() - t0;
      let viaNftBatches = 0;
      // batches() sized each batch from its operations' sizes; one that still does not fit
      // (or holds what the writer cannot encode) goes through nft.
      for (const batch of planned) {
        if (!elements.encodable(batch)) {
          viaNftBatches++;
          await viaNft(batch);
          continue;
        }
        try {
          await elements.commit(batch);
        } catch (err) {
          if (!tooLarge(err)) throw err;
          viaNftBatches++;
          await viaNft(batch);
        }
      }
      const ms = (x: number) => Math.round(x * 10) / 10;
      log?.debug({ operations: operations.length, structure: structure.length, structureVia: netlinkChains ? 'netlink' : 'nft', structureAndSizingMs: ms(structureMs), elementsMs: ms(performance.now() - t0 - structureMs), viaNftBatches }, 'loaded the tables');
    },
  };
}

/** An element batch refused before sending because of its size (see ElementWriter.commit). */
const tooLarge = (err: unknown) => (err as { code?: unknown } | null)?.code === 'EMSGSIZE' && (err as { applied?: unknown }).applied === false;

/** Elements per piece of a batch; pieces fill a batch up to its size limit. */
const PIECE = 1000;

/** Element operations cut into batches of at most the writer's size (nft's share in batches of their own). */
function batches(operations: readonly ElementOperation[], writer: ElementWriter): ElementOperation[][] {
  const out: ElementOperation[][] = [];
  let current: ElementOperation[] = [];
  let size = 0;
  const flush = () => {
    if (current.length > 0) out.push(current);
    current = [];
    size = 0;
  };
  for (const o of operations) {
    for (let i = 0; i < Math.max(1, o.elements.length); i += PIECE) {
      const piece = { ...o, elements: o.elements.slice(i, i + PIECE) };
      const bytes = writer.bytes(piece);
      if (bytes === null) {
        flush();
        out.push([piece]);
        continue;
      }
      // A small margin for the batch's own messages (begin, end, the generation marker).
      if (current.length > 0 && size + bytes > writer.maxBatchBytes - 4096) flush();
      current.push(piece);
      size += bytes;
    }
  }
  flush();
  return out;
}

/** The LoadSession over a pipelined element writer (beginLoad). */
function pipelinedLoad(opening: Promise<ElementWriter>, viaNft: (operations: readonly Operation[]) => Promise<void>, log?: Logger): LoadSession {
  const t0 = performance.now();
  const counts = { writes: 0, structureViaNetlink: 0, structureViaNft: 0, batches: 0, viaNftBatches: 0 };
  let queuedMs = 0;
  let writer: ElementWriter | null = null;
  const ready = opening.then((w) => (writer = w));
  // A helper that does not start fails the first step that needs it (and finish).
  ready.catch(() => undefined);
  let failure: { err: unknown } | null = null;
  const fail = (err: unknown) => void (failure ??= { err });
  /** Batches handed to the helper process. */
  const sent: Promise<unknown>[] = [];
  const track = (p: Promise<unknown>) => sent.push(p.catch(fail));
  /** Every batch handed over is in the kernel (or failed): nft may write after them. */
  const drained = async () => {
    await Promise.all(sent);
    if (failure) throw failure.err;
  };
  // The writes' steps, one after the other; those after a failure do nothing. write() only
  // appends to it, so the caller plans its next chunk while nft writes the tables, or while
  // the steps wait for the helper process.
  let lane: Promise<void> = Promise.resolve();
  const step = (run: () => Promise<void> | void) => {
    lane = lane.then(async () => (failure ? undefined : run())).catch(fail);
  };
  return {
    async write(operations) {
      if (failure) throw failure.err;
      counts.writes++;
      const structure = operations.filter((o) => !isElementOperation(o));
      const elementOps = operations.filter((o): o is ElementOperation => isElementOperation(o));
      // Farm chains of compiled rules go over netlink, in turn; anything else (the tables,
      // hooked chains), through nft once every batch before it is in. Structure before the
      // elements, which may name it.
      if (structure.length > 0) {
        step(async () => {
          // The first write (the tables) needs no helper: nft writes it while the helper starts.
          const now = writer ?? (sent.length === 0 ? null : await ready);
          const chains = now?.writeChains?.(structure) ?? null;
          if (chains) {
            counts.structureViaNetlink++;
            track(chains);
            return;
          }
          counts.structureViaNft++;
          await drained();
          await viaNft(structure);
        });
      }
      step(async () => {
        const w = await ready;
        for (const batch of batches(elementOps, w)) {
          counts.batches++;
          if (w.encodable(batch)) {
            track(w.commit(batch));
            continue;
          }
          counts.viaNftBatches++;
          await drained();
          await viaNft(batch);
        }
        queuedMs = performance.now() - t0;
      });
    },
    async finish() {
      try {
        await lane;
        await drained();
        await ready;
      } finally {
        (await ready.catch(() => null))?.close();
      }
      const ms = (x: number) => Math.round(x * 10) / 10;
      // queuedMs: the last batch handed over; doneMs: the kernel had it all.
      log?.debug({ ...counts, queuedMs: ms(queuedMs), doneMs: ms(performance.now() - t0) }, 'loaded the tables as they were planned (pipelined)');
    },
  };
}
