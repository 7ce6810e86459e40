/**
 * Keeps BIRD announcing exactly the VIPs this node can serve. After every reconcile pass (and
 * after a BGP settings change, which wakes one), it works out the VIPs (vips.ts), keeps them as
 * routes in kernel table 222 (for a routing daemon of the operator's own: speaker 'external'),
 * renders BIRD's configuration (bird-config.ts) and, when the text changed, writes it and has
 * BIRD re-read it through the control socket; BIRD is started when BGP is enabled (speaker
 * 'bird') and stopped when it is disabled. On SIGTERM, withdrawAll() empties the announcement
 * before anything stops.
 */
import fs from 'node:fs';
import type { Logger } from 'pino';
import type { Store } from '../store/store.js';
import type { HostInterface, HostNetwork } from '../dataplane/netlink/host-network.js';
import { findConnectedInterface } from '../dataplane/netlink/ipv4.js';
import { bgpToJson, type BgpJson, type BgpSettings } from './bgp-settings.js';
import { neighborProtocol, renderBirdConfig, STATIC_PROTOCOL } from './bird-config.js';
import { BirdProcess, type BirdFiles } from './bird-process.js';
import { parseProtocols, parseRoutePrefixes } from './birdc.js';

export interface BgpSpeakerOptions {
  store: Store;
  /**
   * The VIPs this node can serve now (src/cluster/vips.ts decides per farm; the reconciler
   * keeps the set as it applies changes, so reading it costs nothing per farm).
   */
  vips: () => string[];
  interfaces: () => Promise<HostInterface[]>;
  /** Keeps the VIP routes of table 222; absent (tests, dry run): not kept. */
  routes?: Pick<HostNetwork, 'listOwnedRoutes' | 'addVipRoute' | 'deleteVipRoute'>;
  files: BirdFiles;
  log: Logger;
  /** Render and log only; never start BIRD (nftfarm --dry-run). */
  dryRun: boolean;
  birdBinary?: string;
}

export interface NeighborStatus {
  address: string;
  asn: number;
  /** BIRD's BGP state (Idle, Connect, Active, OpenSent, OpenConfirm, Established), or 'unknown'. */
  state: string;
  info: string;
  since: string | null;
}

/**
 * The kernel routing table where the VIPs announced now are kept (`VIP/32 dev lo proto 222`):
 * no rule points at it, so it changes no forwarding; another daemon can learn it.
 */
export const VIP_ROUTE_TABLE = 222;

export interface BgpStatus extends BgpJson {
  status: {
    speaker: 'bird' | 'external' | 'off' | 'dry-run';
    running: boolean;
    router_id_in_effect: string | null;
    neighbors: NeighborStatus[];
    /** The prefixes BIRD originates now (what the neighbours are sent). */
    announced: string[];
    /** What nftfarm asked BIRD to announce last. */
    wanted: string[];
    withdrawn_for_shutdown: boolean;
    last_error: string | null;
  };
}

export class BgpSpeaker {
  private readonly bird: BirdProcess;
  private readonly log: Logger;
  private syncing: Promise<void> | null = null;
  private again = false;
  private written: string | null = null;
  private wanted: string[] = [];
  private routerId: string | null = null;
  private withdrawn = false;
  private lastError: string | null = null;
  private closed = false;
  /** The VIP list table 222 was last made to hold (null: not yet). */
  private tableSynced: string | null = null;

  constructor(private readonly opts: BgpSpeakerOptions) {
    this.log = opts.log;
    this.bird = new BirdProcess({
      files: opts.files,
      log: opts.log.child({ component: 'bird' }),
      binary: opts.birdBinary,
      // A restarted BIRD reads the file as last written: nothing to re-send, but check anyway.
      onRestart: () => this.refresh(),
    });
  }

  /** Something may have changed (a pass ran, settings changed): converge soon. Never throws. */
  refresh(): void {
    if (this.closed) return;
    if (this.syncing) {
      this.again = true;
      return;
    }
    this.syncing = this.loop().finally(() => {
      this.syncing = null;
    });
  }

  /** Resolves once every refresh asked so far has been carried out. */
  async settled(): Promise<void> {
    while (this.syncing) await this.syncing;
  }

  /**
   * SIGTERM, first step: announce nothing any more (BIRD sends the withdrawals at once) and
   * wait until BIRD originates no VIP. Forwarding goes on: the kernel rules stay.
   */
  async withdrawAll(timeoutMs = 5000): Promise<void> {
    this.withdrawn = true;
    this.refresh();
    await this.settled();
    if (!this.bird.running()) return;
    const deadline = Date.now() + timeoutMs;
    while (Date.now() < deadline) {
      try {
        if (parseRoutePrefixes(await this.bird.command(`show route protocol ${STATIC_PROTOCOL}`)).length === 0) return;
      } catch {
        return;
      }
      await new Promise((r) => setTimeout(r, 50));
    }
  }

  /** Last step of a shutdown: BIRD exits with nftfarm. */
  async close(): Promise<void> {
    this.closed = true;
    await this.settled();
    await this.bird.stop();
  }

  private async loop(): Promise<void> {
    do {
      this.again = false;
      try {
        await this.sync();
        this.lastError = null;
      } catch (err) {
        this.lastError = err instanceof Error ? err.message : String(err);
        this.log.error({ err: this.lastError }, 'could not bring BIRD in line with the farms');
      }
    } while (this.again && !this.closed);
  }

  private async sync(): Promise<void> {
    const settings = this.opts.store.bgpSettings();
    // IPv4 VIPs only: BIRD's configuration and table 222 carry /32s (IPv6 VIPs keep their
    // proxy NDP announcement, see desired.ts; /128s by BGP are not built yet).
    const vips = !settings.enabled || this.withdrawn ? [] : this.opts.vips().filter((v) => !v.includes(':'));
    await this.syncKernelTable(vips);
    if (!settings.enabled || settings.speaker !== 'bird') {
      if (settings.enabled && vips.join() !== this.wanted.join()) this.logChange(vips);
      this.wanted = vips;
      this.written = null;
      if (this.bird.running()) {
        this.log.info('BGP disabled or external: stopping bird (its sessions close, the routers withdraw the VIPs)');
        await this.bird.stop();
      }
      return;
    }
    const routerId = settings.routerId ?? (await this.ownAddress(settings));
    if (routerId === null) {
      throw new Error(`no router id: none is set and no interface of this node is in a network of the neighbour ${settings.neighbors[0]?.address}`);
    }
    this.routerId = routerId;
    const text = renderBirdConfig({ settings, routerId, vips });
    const changed = text !== this.written;
    if (changed) this.logChange(vips);
    if (this.opts.dryRun) {
      if (changed) this.log.info({ config: text }, 'dry run: not running bird');
      this.written = text;
      this.wanted = vips;
      return;
    }
    if (!changed && this.bird.running()) return;
    writeAtomically(this.opts.files.config, text, this.opts.files.dir);
    if (this.bird.running()) await this.bird.reconfigure();
    else await this.bird.start();
    this.written = text;
    this.wanted = vips;
  }

  /**
   * Table 222 holds exactly the VIPs announced now. Listed only when the set changed (or at
   * start): a route dump costs what the node's whole routing table holds.
   */
  private async syncKernelTable(vips: string[]): Promise<void> {
    const routes = this.opts.routes;
    if (!routes || this.opts.dryRun || this.tableSynced === vips.join()) return;
    const present = new Set((await routes.listOwnedRoutes(VIP_ROUTE_TABLE)).filter((r) => r.prefixLength === 32).map((r) => r.ip));
    for (const vip of vips) if (!present.has(vip)) await routes.addVipRoute(vip, VIP_ROUTE_TABLE);
    for (const vip of present) if (!vips.includes(vip)) await routes.deleteVipRoute(vip, VIP_ROUTE_TABLE);
    this.tableSynced = vips.join();
  }

  private logChange(vips: string[]): void {
    const before = new Set(this.wanted);
    const after = new Set(vips);
    for (const vip of vips) if (!before.has(vip)) this.log.info({ vip }, 'VIP announced (BGP)');
    for (const vip of this.wanted) if (!after.has(vip)) this.log.info({ vip, shutdown: this.withdrawn || undefined }, 'VIP withdrawn (BGP)');
  }

  /** The address of the interface whose network holds the first neighbour. */
  private async ownAddress(settings: BgpSettings): Promise<string | null> {
    const interfaces = await this.opts.interfaces();
    for (const n of settings.neighbors) {
      const match = findConnectedInterface(interfaces, n.address);
      if (match) return match.address.address;
    }
    return null;
  }

  /** The settings with the live state (GET /system/bgp). */
  async status(): Promise<BgpStatus> {
    const settings = this.opts.store.bgpSettings();
    const speaker = !settings.enabled ? 'off' : this.opts.dryRun ? 'dry-run' : settings.speaker;
    let neighbors: NeighborStatus[] = settings.neighbors.map((n) => ({ ...n, state: 'unknown', info: '', since: null }));
    let announced: string[] = [];
    let lastError = this.lastError;
    if (speaker === 'external') announced = this.wanted.map((v) => `${v}/32`);
    if (speaker === 'bird' && this.bird.running()) {
      try {
        const protocols = parseProtocols(await this.bird.command('show protocols'));
        neighbors = settings.neighbors.map((n) => {
          const p = protocols.find((x) => x.name === neighborProtocol(n.address));
          const [state = 'unknown', ...rest] = (p?.info ?? '').split(/\s+/).filter((w) => w !== '');
          return { ...n, state: p ? (p.state === 'down' ? 'Down' : state) : 'unknown', info: rest.join(' '), since: p?.since ? new Date(p.since * 1000).toISOString() : null };
        });
        announced = parseRoutePrefixes(await this.bird.command(`show route protocol ${STATIC_PROTOCOL}`));
      } catch (err) {
        lastError = err instanceof Error ? err.message : String(err);
      }
    }
    return {
      ...bgpToJson(settings, true),
      status: {
        speaker,
        running: this.bird.running(),
        router_id_in_effect: settings.enabled ? this.routerId : null,
        neighbors,
        announced,
        wanted: settings.enabled ? this.wanted.map((v) => `${v}/32`) : [],
        withdrawn_for_shutdown: this.withdrawn,
        last_error: lastError,
      },
    };
  }
}

function writeAtomically(file: string, text: string, dir: string): void {
  fs.mkdirSync(dir, { recursive: true, mode: 0o750 });
  fs.writeFileSync(`${file}.tmp`, text, { mode: 0o640 });
  fs.renameSync(`${file}.tmp`, file);
}
