/**
 * Farm names were not limited before NAME_MAX_LENGTH: a longer name breaks the data plane
 * (nft comments) and cannot be addressed (the router's path parameter limit). `serve` renames
 * such farms once at start, keeping the start of the name, and logs each rename.
 */
import { NAME_MAX_LENGTH } from '../model/limits.js';
import type { Store } from './store.js';

export interface Rename {
  from: string;
  to: string;
}

/** Renames every farm whose name is too long to `<start>-<id>` (free names only); one write. */
export function shortenLongFarmNames(store: Store): Rename[] {
  const long = store.listFarms().filter((f) => f.name.length > NAME_MAX_LENGTH);
  if (long.length === 0) return [];
  return store.write((generation) =>
    long.map((farm) => {
      let to = '';
      for (let n = 0; to === '' || store.getFarm(to); n++) {
        const suffix = n === 0 ? `-${farm.id}` : `-${farm.id}-${n}`;
        to = `${farm.name.slice(0, NAME_MAX_LENGTH - suffix.length)}${suffix}`;
      }
      store.updateFarm(farm.id, { name: to }, generation);
      return { from: farm.name, to };
    }),
  );
}
