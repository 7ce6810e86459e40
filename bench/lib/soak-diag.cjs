// Memory diagnostics for `SOAK_DIAG=1 npm run soak`, preloaded into nftfarm with
// NODE_OPTIONS=--require (so it runs in the main thread and in every worker thread):
// every 5 s one JSON line per thread with process.memoryUsage() and V8's heap statistics,
// appended to $NFTFARM_SOAK_DIAG_DIR/memory.jsonl; at the process ages (seconds) listed in
// NFTFARM_SOAK_SNAPSHOTS, a heap snapshot of this thread's isolate and, from the main thread,
// a copy of /proc/self/smaps. Timers are unref'd: they never keep nftfarm alive.
'use strict';
const fs = require('node:fs');
const path = require('node:path');
const v8 = require('node:v8');
const { isMainThread, threadId } = require('node:worker_threads');

const dir = process.env.NFTFARM_SOAK_DIAG_DIR;
if (dir) {
  const thread = isMainThread ? 'main' : `worker${threadId}`;
  const born = Date.now();
  const file = path.join(dir, 'memory.jsonl');
  const mb = (x) => Math.round((x / 2 ** 20) * 10) / 10;
  const write = () => {
    const m = process.memoryUsage();
    const h = v8.getHeapStatistics();
    const line = {
      t: Date.now(),
      pid: process.pid,
      thread,
      rss: mb(m.rss),
      heapTotal: mb(m.heapTotal),
      heapUsed: mb(m.heapUsed),
      external: mb(m.external),
      arrayBuffers: mb(m.arrayBuffers),
      malloced: mb(h.malloced_memory),
      peakMalloced: mb(h.peak_malloced_memory),
      contexts: h.number_of_native_contexts,
    };
    fs.appendFileSync(file, `${JSON.stringify(line)}\n`);
  };
  setInterval(write, 5000).unref();
  for (const age of (process.env.NFTFARM_SOAK_SNAPSHOTS ?? '').split(',').filter(Boolean).map(Number)) {
    setTimeout(() => {
      const stem = path.join(dir, `${process.pid}-${thread}-${age}s`);
      // /proc files report size 0: read them, do not copy them.
      if (isMainThread) fs.writeFileSync(`${stem}.smaps`, fs.readFileSync('/proc/self/smaps'));
      v8.writeHeapSnapshot(`${stem}.heapsnapshot`);
    }, age * 1000).unref();
  }
}
