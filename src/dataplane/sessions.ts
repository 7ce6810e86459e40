/**
 * Persistence sessions as the kernel holds them: the elements of a farm's dynamic sessions
 * map (client key -> backend mark, with the time left before they expire). Reading is
 * `nft -j list map` of that one map, never a whole-ruleset listing.
 */
import type { LiveSession } from '../model/runtime.js';

export type { LiveSession };

type JsonValue = string | number | { concat: (string | number)[] };

function keyText(value: JsonValue): string {
  if (typeof value === 'object' && value !== null && Array.isArray(value.concat)) return value.concat.map(String).join(' . ');
  return String(value);
}

/** Parses `nft -j list map ...` of a map of type `<key> : mark`. */
export function parseSessionListing(json: string): LiveSession[] {
  const parsed = JSON.parse(json) as { nftables?: Record<string, any>[] };
  const out: LiveSession[] = [];
  for (const entry of parsed.nftables ?? []) {
    const elems = entry.map?.elem as unknown[] | undefined;
    if (!Array.isArray(elems)) continue;
    for (const item of elems) {
      if (!Array.isArray(item) || item.length !== 2) continue;
      const [keyPart, mark] = item as [any, unknown];
      const elem = keyPart?.elem ?? { val: keyPart };
      out.push({
        key: keyText(elem.val as JsonValue),
        mark: Number(mark),
        expiresSeconds: typeof elem.expires === 'number' ? elem.expires : null,
      });
    }
  }
  return out.sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0));
}
