/**
 * Every farm as the reads of every farm (/metrics, /stats/farms) show it, kept between reads:
 * with 10,000 farms, reading the store whole and describing each farm took 45-100 ms of the
 * API's event loop per scrape. A store write names the farms it changed (re-read alone); a
 * farm whose data-plane runtime object was replaced is described again; anything the change
 * feed did not account for (a generation it did not announce) reloads the whole list.
 */
import type { Backend, Farm } from '../model/farm.js';
import type { DataplaneView, FarmRuntime } from '../model/runtime.js';
import type { FarmList, ListedFarm } from '../observe/farm-counters.js';
import type { Store } from '../store/store.js';
import { backendView, counterDescriptor, farmStatus } from './present.js';

interface Entry {
  farm: Farm;
  backends: Backend[];
  runtime: FarmRuntime | undefined;
  listed: ListedFarm;
}

export function listedFarm(farm: Farm, backends: readonly Backend[], runtime: FarmRuntime | undefined): ListedFarm {
  const status = farmStatus(farm, backends.map((b) => backendView(b, farm, runtime)));
  return { ...counterDescriptor(farm, backends, runtime), running: farm.running, profile: farm.profile, status, vip: farm.vip, vport: farm.vport };
}

export class FarmListCache {
  private entries = new Map<number, Entry>();
  /** Farm ids in the store's order (by name). */
  private order: number[] = [];
  private list: FarmList = { version: 0, farms: [] };
  /** The generation the entries reflect, and that of the last write the change feed announced. */
  private generation = -1;
  private announced = -1;
  private full = true;
  private readonly dirty = new Set<number>();
  private readonly unsubscribe: () => void;

  constructor(
    private readonly store: Store,
    private readonly dataplane: DataplaneView,
  ) {
    this.unsubscribe = store.onChange((change) => {
      // A write the feed skipped (a generation jumped): trust nothing, reload everything.
      if (this.announced >= 0 && change.generation !== this.announced + 1) this.full = true;
      this.announced = change.generation;
      for (const id of change.farmIds) this.dirty.add(id);
    });
  }

  close(): void {
    this.unsubscribe();
  }

  /** The current list; the same object (and version) while nothing changed. */
  current(): FarmList {
    const generation = this.store.generation();
    let changed = false;
    if (this.full || (generation !== this.generation && generation !== this.announced)) {
      this.reload();
      changed = true;
    } else if (this.dirty.size > 0) {
      changed = this.reread();
    }
    this.generation = generation;
    this.announced = generation;
    for (const e of this.entries.values()) {
      const runtime = this.dataplane.farm(e.farm.id);
      if (runtime === e.runtime) continue;
      e.runtime = runtime;
      e.listed = listedFarm(e.farm, e.backends, runtime);
      changed = true;
    }
    if (changed) this.list = { version: this.list.version + 1, farms: this.order.flatMap((id) => this.entries.get(id)?.listed ?? []) };
    return this.list;
  }

  private reload(): void {
    const snapshot = this.store.snapshot();
    this.entries = new Map();
    for (const { farm, backends } of snapshot.farms) {
      const runtime = this.dataplane.farm(farm.id);
      this.entries.set(farm.id, { farm, backends, runtime, listed: listedFarm(farm, backends, runtime) });
    }
    this.order = snapshot.farms.map((f) => f.farm.id);
    this.full = false;
    this.dirty.clear();
  }

  /** Re-reads the farms the change feed named; true when any changed. */
  private reread(): boolean {
    const ids = [...this.dirty];
    this.dirty.clear();
    const configs = this.store.farmConfigs(ids);
    let reorder = false;
    for (const id of ids) {
      const before = this.entries.get(id);
      const config = configs.get(id);
      if (!config) {
        if (before) {
          this.entries.delete(id);
          reorder = true;
        }
        continue;
      }
      if (!before || before.farm.name !== config.farm.name) reorder = true;
      const runtime = this.dataplane.farm(id);
      this.entries.set(id, { farm: config.farm, backends: config.backends, runtime, listed: listedFarm(config.farm, config.backends, runtime) });
    }
    if (reorder) this.order = this.store.farmIdsByName();
    return true;
  }
}
