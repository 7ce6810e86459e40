/**
 * `nftfarm serve`: config -> store -> API key -> reconciler -> HTTP API. The only file that
 * listens; SIGTERM/SIGINT close it in the reverse order.
 */
import { pino } from 'pino';
import fs from 'node:fs';
import { isLoopbackHost, type Config } from './config.js';
import { buildApp } from './app.js';
import { resolveApiKey } from './api/api-key.js';
import { openDatabase } from './store/db.js';
import { Store } from './store/store.js';
import { shortenLongFarmNames } from './store/legacy-names.js';
import { secureDataFiles } from './store/file-modes.js';
import { NAME_MAX_LENGTH } from './model/limits.js';
import { openHostNetwork } from './dataplane/netlink/host-network.js';
import { netlinkHostView } from './dataplane/host-view.js';
import { createNftRunner } from './dataplane/nft/runner.js';
import { openNftObjectReader } from './dataplane/netlink/nft-objects.js';
import { dryRunKernel, kernelAccess } from './dataplane/kernel-access.js';
import { KernelAccessError, preflight } from './dataplane/preflight.js';
import { createConntrack } from './dataplane/conntrack.js';
import { Reconciler } from './reconcile/reconciler.js';
import { LEGACY_NAT_TABLE_FAMILY, NAT_TABLE_NAME } from './reconcile/names.js';
import { HealthMonitor } from './health/monitor.js';
import { noCounters } from './observe/farm-counters.js';
import { openObserver } from './observe/observer.js';
import { createMetrics } from './metrics/metrics.js';
import { VERSION } from './version.js';
import { BgpSpeaker } from './cluster/bgp-speaker.js';
import { birdFiles } from './cluster/bird-process.js';
import { writeServeFile } from './config-doc/cli.js';
import { startMemoryReclaim } from './memory-reclaim.js';

export async function serve(config: Config): Promise<number> {
  const log = pino({ level: config.logLevel, base: { pid: process.pid } });
  // Whatever nftfarm creates (database, -wal, -shm, key file) is the owner's only.
  process.umask(0o077);
  let tls: { cert: Buffer; key: Buffer } | undefined;
  if (config.tls) {
    try {
      tls = { cert: fs.readFileSync(config.tls.certPath), key: fs.readFileSync(config.tls.keyPath) };
    } catch (err) {
      const message = `cannot read the TLS certificate or key: ${(err as Error).message}`;
      log.fatal(message);
      process.stderr.write(`nftfarm: ${message}\n`);
      return 1;
    }
  }
  const nft = createNftRunner();
  // Where start-up time goes (logged once serving): recovery after a crash is measured in seconds.
  const phases: Record<string, number> = { processMs: Math.round(performance.now()) };
  const phase = (name: string, since: number) => (phases[name] = Math.round(performance.now() - since));
  let since = performance.now();
  if (!config.dryRun) {
    try {
      for (const warning of await preflight(nft)) log.warn(warning);
      // Versions before IPv6 kept the nat and dnat farms in a table of family ip; its rules would
      // still NAT beside the inet table. Its connections keep their NAT in conntrack.
      // Asked over netlink about that one table: `nft list tables` reads every set's elements
      // first (20 s at 10,000 farms once the selection map has seen churn).
      const reader = openNftObjectReader();
      try {
        if (await reader.inventory(LEGACY_NAT_TABLE_FAMILY, NAT_TABLE_NAME)) {
          await nft.run(['delete', 'table', LEGACY_NAT_TABLE_FAMILY, NAT_TABLE_NAME]);
          log.warn({ table: `${LEGACY_NAT_TABLE_FAMILY} ${NAT_TABLE_NAME}` }, 'deleted the NAT table of an earlier version (now inet nftfarm)');
        }
      } finally {
        reader.close();
      }
    } catch (err) {
      if (err instanceof KernelAccessError) {
        log.fatal(err.message);
        process.stderr.write(`nftfarm: ${err.message}\n`);
        return 1;
      }
      throw err;
    }
  }

  phase('preflightMs', since);
  since = performance.now();
  const modes = secureDataFiles(config.dbPath);
  for (const m of modes.tightened) {
    log.warn({ path: m.path, from: `0${m.from.toString(8)}`, to: `0${m.to.toString(8)}` }, 'tightened a data file that others could read');
  }
  for (const warning of modes.warnings) log.warn(warning);
  const store = new Store(openDatabase(config.dbPath), (err) => log.error({ err }, 'a store listener failed; the write stands'));
  for (const { from, to } of shortenLongFarmNames(store)) {
    log.warn({ from: from.length > 200 ? `${from.slice(0, 200)}...` : from, fromLength: from.length, to }, `renamed a farm whose name is longer than ${NAME_MAX_LENGTH} characters`);
  }
  phase('storeMs', since);
  const apiKey = resolveApiKey(config.apiKey, config.dbPath);
  if (apiKey.generated) log.info({ apiKeyFile: apiKey.origin }, 'generated a new API key; read it from this file');
  else log.info({ apiKeyFrom: apiKey.origin }, 'API key loaded');

  const net = openHostNetwork();
  const metrics = createMetrics();
  // Health transitions wake the reconciler, which reads the monitor's verdicts as host facts.
  const health = new HealthMonitor({
    store,
    log: log.child({ component: 'health' }),
    onTransition: (farmId) => reconciler.healthChanged([farmId]),
    onResult: (r) => {
      if (r.latencyMs !== null) metrics.healthCheck({ farm: r.farm, backend: r.backend, result: r.up ? 'up' : 'down' }, r.latencyMs / 1000);
    },
  });
  // Counters, pins and connections are read by the observer's worker thread (netlink dumps,
  // off the API's event loop); reads only: the reconciler stays the only writer.
  const counters = config.dryRun ? noCounters : openObserver(log.child({ component: 'observer' }));
  const conntrackTool = createConntrack();
  const conntrack = { countByMark: () => counters.connections(), deleteByMark: (mark: number) => conntrackTool.deleteByMark(mark) };
  const kernel = config.dryRun ? dryRunKernel(log) : kernelAccess(nft, undefined, log);
  const reconciler = new Reconciler({
    store,
    net,
    kernel,
    log: log.child({ component: 'reconciler' }),
    dryRun: config.dryRun,
    conntrack,
    health,
    onPass: (pass) => metrics.reconcilePass(pass.kind, pass.result, pass.seconds),
    // The BGP speaker follows the VIPs this node can serve (issue 12).
    onServableVipsChanged: () => bgp.refresh(),
  });
  // BGP announcement of the VIPs through a supervised BIRD (when enabled in the store).
  const bgp = new BgpSpeaker({
    store,
    vips: () => reconciler.servableVips(),
    interfaces: () => net.listInterfaces(),
    routes: net,
    files: birdFiles(config.dbPath),
    log: log.child({ component: 'bgp' }),
    dryRun: config.dryRun,
    birdBinary: process.env.NFTFARM_BIRD,
  });
  // BGP settings are in the store: any write may have changed them (a sync costs what the VIPs do).
  store.onChange(() => bgp.refresh());
  metrics.watchGenerations(() => {
    const system = reconciler.system();
    return { desired: system.storeGeneration, applied: system.appliedGeneration };
  });
  since = performance.now();
  const app = await buildApp({
    store,
    apiKey: apiKey.key,
    host: netlinkHostView(net),
    dataplane: reconciler,
    bgp,
    counters,
    metrics,
    metricsAccess: config.metrics,
    loggerInstance: log,
    tls,
  });

  // The API first: it answers within a second of a restart, whatever the number of farms,
  // while the first pass runs (farms show dataplane.state 'pending' until it is done).
  try {
    await app.listen({ host: config.listenHost, port: config.listenPort });
  } catch (err) {
    log.fatal({ err }, `cannot listen on ${config.listenHost}:${config.listenPort}`);
    kernel.close();
    await bgp.close();
    net.close();
    store.close();
    return 1;
  }
  phase('apiMs', since);
  // The first pass adopts what the kernel holds when it is what nftfarm last committed, or
  // converges the kernel to the store in one transaction; farms that did not change keep
  // their flows. Started right after listen resolves: no request runs before it subscribes.
  const memory = startMemoryReclaim({ log });
  // Windows of memory saver mode keep away from writes (memory-reclaim.ts).
  store.onChange(() => memory.write());
  const converged = reconciler.start().then(() => {
    log.info({ dataplane: reconciler.system() }, 'first reconcile pass done');
    memory.whenQuiet('the first pass is done');
  });
  health.start();
  log.info(
    { version: VERSION, db: config.dbPath, dryRun: config.dryRun, listen: `${config.listenHost}:${config.listenPort}`, https: !!tls, metrics: config.metrics, startup: phases },
    'nftfarm is serving',
  );
  if (!tls && !isLoopbackHost(config.listenHost)) {
    log.warn(
      { listen: `${config.listenHost}:${config.listenPort}` },
      'the API listens beyond loopback over plain HTTP: the API key and every answer cross the network in clear; use --tls-cert and --tls-key',
    );
  }
  // `nftfarm config export/apply` go through this daemon while it runs.
  const removeServeFile = writeServeFile(config.dbPath, `${config.listenHost}:${config.listenPort}`);

  const signal = await new Promise<NodeJS.Signals>((resolve) => {
    process.once('SIGTERM', () => resolve('SIGTERM'));
    process.once('SIGINT', () => resolve('SIGINT'));
  });
  log.info({ signal }, 'shutting down');
  removeServeFile();
  // With BGP: withdraw first, then keep serving (the kernel forwards, pinned flows go on) for
  // the drain period while the routers move the flows to the other nodes; then stop.
  const { enabled, drainTime } = store.bgpSettings();
  if (enabled) {
    await bgp.withdrawAll();
    log.info({ drainSeconds: drainTime }, 'VIPs withdrawn (BGP): draining before stopping');
    await new Promise((resolve) => setTimeout(resolve, drainTime * 1000));
  }
  await app.close();
  health.stop();
  await converged;
  // The kernel rules stay: traffic keeps flowing while nftfarm restarts. With no farm left,
  // the reconciler has already removed everything it made.
  await reconciler.stop();
  kernel.close();
  // BIRD exits with nftfarm (its sessions close with a Cease; the VIPs are withdrawn already).
  await bgp.close();
  await counters.close();
  net.close();
  store.close();
  memory.stop();
  log.info('stopped');
  return 0;
}
