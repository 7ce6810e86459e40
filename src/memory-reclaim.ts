/**
 * Gives memory back to the system after bursts (a first load, a burst of API writes).
 *
 * V8 keeps the pages a collection frees in its page pool, resident: after a cold start of
 * 10,000 farms the daemon held 392 MB of RSS with 78 MB of heap, unchanged after 40 s idle
 * (V8's memory reducer follows collections, and an idle daemon makes few). In memory saver
 * mode the reducer runs on its own: RSS 165 MB within 5 s. The mode is not kept on: its more
 * frequent full collections raised the p99 of backend PUTs at 10,000 farms from 14-17 to
 * 23-26 ms and of reads while /metrics is scraped from 20-21 to 31-36 ms (bench, 2 runs each).
 * So it runs in short windows: after the first pass, and when a periodic check finds that
 * the memory outside the heap grew. With them, 2 runs of the bench's control part at 10,000
 * farms: RSS after it 301-333 MB (477-535 MB without), PUT p99 14-15 ms, reads while scraping
 * 19-21 ms.
 *
 * A window waits until API writes have been quiet for a while, and a write ends an open one
 * (it opens again at the next quiet spell): changes measured inside the window after a
 * 10,000-farm start took up to 32 ms (41 ms under 100 PUTs/s), after it at most 10.5 ms.
 */
import v8 from 'node:v8';
import type { Logger } from 'pino';

export interface MemoryReclaimOptions {
  /** How long one window of memory saver mode lasts. */
  windowMs?: number;
  /** How long API writes must have been quiet before a window opens. */
  quietMs?: number;
  /** How often the resident memory is compared with the heap. */
  checkEveryMs?: number;
  /**
   * A window opens when RSS minus the heap's physical size has grown by more than this since
   * the last window (or the start): what is left after a window (native memory, workers) does
   * not open one window after another.
   */
  slackBytes?: number;
  log?: Logger;
  /** For tests: the process's resident bytes, the heap's physical bytes, V8's flag setter. */
  residentBytes?: () => number;
  heapBytes?: () => number;
  setFlags?: (flags: string) => void;
}

export interface MemoryReclaim {
  /** Opens a window once writes are quiet (at once if they are; nothing if one is open). */
  whenQuiet(why: string): void;
  /** An API write arrived: an open window ends, and opens again at the next quiet spell. */
  write(): void;
  stop(): void;
}

export function startMemoryReclaim(options: MemoryReclaimOptions = {}): MemoryReclaim {
  const windowMs = options.windowMs ?? 8000;
  const quietMs = options.quietMs ?? 2000;
  const slack = options.slackBytes ?? 128 * 2 ** 20;
  const resident = options.residentBytes ?? (() => process.memoryUsage.rss());
  const heap = options.heapBytes ?? (() => v8.getHeapStatistics().total_physical_size);
  const setFlags = options.setFlags ?? ((flags: string) => v8.setFlagsFromString(flags));
  const outsideHeap = () => resident() - heap();
  let baseline = outsideHeap();
  /** The open window's end, and why it opened. */
  let closing: { timer: NodeJS.Timeout; why: string } | null = null;
  /** Why a window is wanted, while it waits for quiet. */
  let wanted: string | null = null;
  let waiting: NodeJS.Timeout | null = null;
  let lastWrite = -Infinity;

  const open = (why: string) => {
    options.log?.debug({ why, residentMb: Math.round(resident() / 2 ** 20), heapMb: Math.round(heap() / 2 ** 20) }, 'returning pooled memory (V8 memory saver mode for a while)');
    setFlags('--memory-saver-mode');
    const timer = setTimeout(() => {
      closing = null;
      setFlags('--no-memory-saver-mode');
      baseline = outsideHeap();
    }, windowMs);
    timer.unref();
    closing = { timer, why };
  };
  /** Opens the wanted window if writes have been quiet long enough, else looks again then. */
  const tryOpen = () => {
    waiting = null;
    if (wanted === null || closing) return;
    const wait = lastWrite + quietMs - performance.now();
    if (wait > 0) {
      waiting = setTimeout(tryOpen, wait);
      waiting.unref();
      return;
    }
    const why = wanted;
    wanted = null;
    open(why);
  };
  const whenQuiet = (why: string) => {
    if (closing || wanted !== null) return;
    wanted = why;
    tryOpen();
  };
  const check = setInterval(() => {
    if (outsideHeap() - baseline > slack) whenQuiet('resident memory grew far beyond the heap');
  }, options.checkEveryMs ?? 30_000);
  check.unref();
  return {
    whenQuiet,
    write() {
      lastWrite = performance.now();
      if (!closing) return;
      // Cut short: its collections would land on the writes. Wanted again once they pause.
      clearTimeout(closing.timer);
      const { why } = closing;
      closing = null;
      setFlags('--no-memory-saver-mode');
      wanted = why;
      waiting ??= setTimeout(tryOpen, quietMs);
      waiting.unref();
    },
    stop() {
      clearInterval(check);
      if (waiting) clearTimeout(waiting);
      waiting = null;
      wanted = null;
      if (closing) {
        clearTimeout(closing.timer);
        closing = null;
        setFlags('--no-memory-saver-mode');
      }
    },
  };
}
