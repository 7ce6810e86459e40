#!/usr/bin/env node
/**
 * The netlink element writer against `nft -f` (run as root, after `npm run build`):
 *   node bench/nft-elements.mjs [changes]   (default 200)
 *
 * In a namespace of its own, holding one netdev table with 10,000 chains (a counter rule
 * each) and a `mark : mark` map of 640,000 elements bound by a rule:
 * - throughput: the map filled by the writer in the largest batches it sends, then 100,000
 *   of its elements replaced (delete + add in one batch), against `nft -f` replacing the same
 *   number; elements per second, and how long the largest batch blocks the event loop
 *   (the kernel does all of a batch's work inside sendmsg());
 * - latency: `changes` batches that each replace 8 elements (delete + add: a value change),
 *   timed from the call to the kernel's answer (after 20 unmeasured ones: a long-lived
 *   writer is warm), with the process's CPU time beside it, against `nft -f -` doing the same
 *   change (one process per change, as a reconciler would). Median, p99, max.
 * Prints a summary and the figures as JSON.
 */
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { monitorEventLoopDelay } from 'node:perf_hooks';

const CHANGES = Number(process.argv[2] ?? 200);

if (!process.env.NFEL_BENCH_INNER) {
  const ns = `nfelb${process.env.NFTFARM_LAB_TAG ?? ''}-${process.pid}`;
  spawnSync('ip', ['netns', 'del', ns]);
  const made = spawnSync('ip', ['netns', 'add', ns], { encoding: 'utf8' });
  if (made.status !== 0) throw new Error(`ip netns add: ${made.stderr} (run as root)`);
  try {
    const r = spawnSync('ip', ['netns', 'exec', ns, process.execPath, fileURLToPath(import.meta.url), ...process.argv.slice(2)], {
      stdio: 'inherit',
      env: { ...process.env, NFEL_BENCH_INNER: '1' },
    });
    process.exitCode = r.status ?? 1;
  } finally {
    spawnSync('ip', ['netns', 'del', ns]);
  }
} else {
  await inner();
}

async function inner() {
  const { openNftElementWriter, nftSet, encodeElementBatch } = await import('../dist/dataplane/netlink/nft-elements.js');
  const TABLE = 'nfbench';
  const CHAINS = 10_000;
  const ELEMENTS = 640_000;
  const nft = (args, input) => {
    const r = spawnSync('nft', args, { input, encoding: 'utf8', maxBuffer: 1 << 30 });
    if (r.status !== 0) throw new Error(`nft ${args.join(' ')}: ${r.stderr}`);
    return r.stdout;
  };
  const stats = (xs) => {
    const s = [...xs].sort((a, b) => a - b);
    const at = (q) => s[Math.min(s.length - 1, Math.ceil(q * s.length) - 1)];
    return { n: s.length, median: at(0.5), p99: at(0.99), min: s[0], max: s[s.length - 1] };
  };
  const round = (x, digits = 3) => Number(x.toFixed(digits));
  const fmt = (st) => `median ${st.median.toFixed(2)} ms, p99 ${st.p99.toFixed(2)} ms, max ${st.max.toFixed(2)} ms (n=${st.n})`;

  // The ruleset: 10,000 chains with a rule each, and the map bound by a rule.
  const lines = [`table netdev ${TABLE} {`, '\tmap big { type mark : mark; }', '\tchain lookup { meta mark set meta mark map @big; }'];
  for (let i = 0; i < CHAINS; i++) lines.push(`\tchain c${i} { meta mark ${i + 1} counter; }`);
  lines.push('}');
  let t0 = performance.now();
  nft(['-f', '-'], `${lines.join('\n')}\n`);
  const loadChainsMs = performance.now() - t0;

  const writer = openNftElementWriter();
  const big = nftSet({ family: 'netdev', table: TABLE, set: 'big', key: 'mark', data: 'mark' });
  const perBatch = (() => {
    // The most mark : mark elements one batch holds (28 bytes each, plus message headers).
    let n = Math.floor(writer.maxBatchBytes / 28);
    while (writer.batchBytes([big.add(Array.from({ length: n }, (_, i) => ({ key: i, data: i })))]) > writer.maxBatchBytes) n -= 1000;
    return n;
  })();

  // Throughput 1: fill the map in the largest batches.
  const fillBatches = [];
  const loop = monitorEventLoopDelay({ resolution: 1 });
  loop.enable();
  for (let first = 0; first < ELEMENTS; first += perBatch) {
    const count = Math.min(perBatch, ELEMENTS - first);
    const entries = Array.from({ length: count }, (_, i) => ({ key: first + i + 1, data: (first + i) % 1000 }));
    const e0 = performance.now();
    const op = big.add(entries);
    const e1 = performance.now();
    const r = await writer.commit([op]);
    const e2 = performance.now();
    fillBatches.push({ elements: count, bytes: r.bytes, messages: r.messages, valuesMs: e1 - e0, commitMs: e2 - e1 });
  }
  loop.disable();
  const fillMs = fillBatches.reduce((a, b) => a + b.valuesMs + b.commitMs, 0);
  const fillCommitMs = fillBatches.reduce((a, b) => a + b.commitMs, 0);

  // Where the time of one full batch goes: encoding vs the kernel (sendmsg) + replies.
  const encodeMs = (() => {
    const sample = big.add(Array.from({ length: perBatch }, (_, i) => ({ key: i + 1, data: (i + 7) % 1000 })));
    const e0 = performance.now();
    encodeElementBatch([sample], { firstSeq: 1 });
    return performance.now() - e0;
  })();

  // Throughput 2: replace 100,000 elements (delete + add, one batch when it fits).
  const REPLACED = 100_000;
  const keys = Array.from({ length: REPLACED }, (_, i) => i * 6 + 1);
  const replaceOps = (data) => [big.delete(keys.map((key) => ({ key }))), big.add(keys.map((key) => ({ key, data })))];
  t0 = performance.now();
  const replaced = await writer.commit(replaceOps(5000));
  const replaceWriterMs = performance.now() - t0;
  const replaceScript = `delete element netdev ${TABLE} big { ${keys.join(', ')} }\nadd element netdev ${TABLE} big { ${keys.map((k) => `${k} : 6000`).join(', ')} }\n`;
  t0 = performance.now();
  nft(['-f', '-'], replaceScript);
  const replaceNftMs = performance.now() - t0;

  // Latency: replace 8 elements, CHANGES times, the writer then nft -f.
  const eight = [11, 22, 33, 44, 55, 66, 77, 88].map((k) => k * 7001);
  const change = (i) => [big.delete(eight.map((key) => ({ key }))), big.add(eight.map((key) => ({ key, data: i })))];
  for (let i = 0; i < 20; i++) await writer.commit(change(i)); // warm-up (JIT), as in a long-lived daemon
  const writerMs = [];
  const writerCpuMs = [];
  const generations = [];
  for (let i = 0; i < CHANGES; i++) {
    const c = process.cpuUsage();
    const s = performance.now();
    const r = await writer.commit(change(i));
    writerMs.push(performance.now() - s);
    const used = process.cpuUsage(c);
    // The kernel applies the batch inside our sendmsg(): its work is our system time.
    writerCpuMs.push((used.user + used.system) / 1000);
    generations.push(r.generation);
  }
  const consecutive = generations.every((g, i) => i === 0 || g === generations[i - 1] + 1);
  const nftMs = [];
  for (let i = 0; i < CHANGES; i++) {
    const script = `delete element netdev ${TABLE} big { ${eight.join(', ')} }\nadd element netdev ${TABLE} big { ${eight.map((k) => `${k} : ${i}`).join(', ')} }\n`;
    const s = performance.now();
    nft(['-f', '-'], script);
    nftMs.push(performance.now() - s);
  }
  // Spot check (a dump of 640,000 elements is itself slow): the first and last keys are there.
  const spot = nft(['get', 'element', 'netdev', TABLE, 'big', `{ 1, ${ELEMENTS} }`]).replace(/\s+/g, ' ').trim();
  writer.close();

  const w = stats(writerMs);
  const n = stats(nftMs);
  const maxBlockMs = loop.max / 1e6;
  const result = {
    machine: { cpus: (await import('node:os')).cpus().length, node: process.version, nft: nft(['--version']).trim() },
    ruleset: { chains: CHAINS, elements: ELEMENTS, loadChainsMs: round(loadChainsMs, 0), spotCheck: spot },
    maxBatchBytes: writer.maxBatchBytes,
    elementsPerBatch: perBatch,
    fill: {
      batches: fillBatches.length,
      totalMs: round(fillMs, 0),
      elementsPerSecond: Math.round(ELEMENTS / (fillMs / 1000)),
      commitOnlyElementsPerSecond: Math.round(ELEMENTS / (fillCommitMs / 1000)),
      largestBatch: { bytes: fillBatches[0].bytes, messages: fillBatches[0].messages, valuesMs: round(fillBatches[0].valuesMs, 1), commitMs: round(fillBatches[0].commitMs, 1), encodeMs: round(encodeMs, 1) },
      eventLoopMaxBlockMs: round(maxBlockMs, 1),
    },
    replace100k: {
      writer: { ms: round(replaceWriterMs, 0), bytes: replaced.bytes, elementsPerSecond: Math.round((2 * REPLACED) / (replaceWriterMs / 1000)) },
      nft: { ms: round(replaceNftMs, 0), elementsPerSecond: Math.round((2 * REPLACED) / (replaceNftMs / 1000)) },
    },
    replace8: { writer: w, writerCpu: stats(writerCpuMs), nft: n, speedupMedian: round(n.median / w.median, 1), generationsConsecutive: consecutive },
  };
  for (const k of ['writer', 'writerCpu', 'nft']) for (const f of ['median', 'p99', 'min', 'max']) result.replace8[k][f] = round(result.replace8[k][f]);

  console.log(`table: ${CHAINS} chains (loaded by nft -f in ${result.ruleset.loadChainsMs} ms), map of ${ELEMENTS} mark : mark elements (nft get element: ${spot})`);
  console.log(`largest batch: ${perBatch} elements, ${fillBatches[0].bytes} bytes (limit ${writer.maxBatchBytes}), ${fillBatches[0].messages} messages`);
  console.log(`fill ${ELEMENTS} elements in ${fillBatches.length} batches: ${result.fill.totalMs} ms, ${result.fill.elementsPerSecond} elements/s (values + encoding + kernel; kernel + encoding only: ${result.fill.commitOnlyElementsPerSecond}/s)`);
  console.log(`  one full batch: values ${result.fill.largestBatch.valuesMs} ms, commit ${result.fill.largestBatch.commitMs} ms (of which encoding ${result.fill.largestBatch.encodeMs} ms); event loop blocked up to ${result.fill.eventLoopMaxBlockMs} ms`);
  console.log(`replace 100,000 elements (delete + add): writer ${result.replace100k.writer.ms} ms (${result.replace100k.writer.elementsPerSecond} element ops/s), nft -f ${result.replace100k.nft.ms} ms (${result.replace100k.nft.elementsPerSecond}/s)`);
  console.log(`replace 8 elements, one batch:  writer ${fmt(w)}`);
  console.log(`  (CPU time of the process per change, kernel work and every thread (GC) included: ${fmt(result.replace8.writerCpu)})`);
  console.log(`                                nft -f ${fmt(n)}`);
  console.log(`  median ${result.replace8.speedupMedian}x faster; writer generations consecutive: ${consecutive}`);
  console.log(JSON.stringify(result));
}
