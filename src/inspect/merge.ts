/**
 * Merging the walks of several layers, and overlay's rules for what the
 * merged view shows.
 *
 * Every layer is walked in the same order (walk.ts), so merging them is a
 * k-way merge of sorted streams: each step takes the smallest path among
 * the layers' next entries and yields, for that path, what each layer holds
 * there. A View then applies overlay's rules row by row, keeping only one
 * number per directory level on the current path.
 */
import type { LayerEntry } from './walk.js';

/** One path of a merge: what each layer holds there (undefined where it holds nothing). */
export interface Row {
  path: string;
  key: string;
  depth: number;
  /** By layer index, bottom layer first. */
  entries: (LayerEntry | undefined)[];
}

/**
 * Merges layer walks (bottom layer first) into rows in path order. Lazy:
 * each walk is advanced only as far as the rows taken need.
 */
export function* mergeWalks(walks: Iterator<LayerEntry>[]): Generator<Row> {
  const heads: (LayerEntry | undefined)[] = walks.map((w) => next(w));
  for (;;) {
    let min: string | undefined;
    for (const h of heads) {
      if (h !== undefined && (min === undefined || h.key < min)) min = h.key;
    }
    if (min === undefined) return;
    const entries: (LayerEntry | undefined)[] = new Array(heads.length);
    let first: LayerEntry | undefined;
    for (let i = 0; i < heads.length; i++) {
      const h = heads[i];
      if (h !== undefined && h.key === min) {
        entries[i] = h;
        first ??= h;
        heads[i] = next(walks[i]!);
      }
    }
    yield { path: first!.path, key: min, depth: first!.depth, entries };
  }
}

function next(w: Iterator<LayerEntry>): LayerEntry | undefined {
  const r = w.next();
  return r.done ? undefined : r.value;
}

/** What a view shows at one path. */
export interface Visible {
  entry: LayerEntry;
  /** Index of the layer it comes from. */
  layer: number;
}

/**
 * Overlay's merged view of layers 0..top of a merge, fed the merge's rows
 * in order (every row, since ancestors decide what shows below them).
 *
 * The topmost layer holding a path wins. A whiteout there deletes it; a
 * non-directory hides whatever lower layers hold below it; a directory
 * merges with the directories under it down to the first opaque one (which
 * still counts) or the first non-directory (which does not).
 */
export class View {
  readonly top: number;
  // floors[d]: the lowest layer whose entries still show at depth d+1.
  readonly #floors: number[] = [0];

  constructor(top: number) {
    this.top = top;
  }

  /** Returns what the view shows at row's path, or undefined for nothing (or deleted). */
  visit(row: Row): Visible | undefined {
    const floor = this.#floors[row.depth - 1] ?? this.top + 1;
    this.#floors.length = row.depth;
    const { entries } = row;
    let t = Math.min(this.top, entries.length - 1);
    while (t >= floor && entries[t] === undefined) t--;
    if (t < floor) {
      this.#floors.push(this.top + 1);
      return undefined;
    }
    const entry = entries[t]!;
    if (entry.kind !== 'dir') {
      this.#floors.push(this.top + 1);
      return entry.kind === 'whiteout' ? undefined : { entry, layer: t };
    }
    let childFloor = floor;
    for (let j = t; j >= floor; j--) {
      const e = entries[j];
      if (e === undefined) continue;
      if (e.kind !== 'dir') {
        childFloor = j + 1;
        break;
      }
      if (e.opaque) {
        childFloor = j;
        break;
      }
    }
    this.#floors.push(childFloor);
    return { entry, layer: t };
  }
}

/** True when path lies at or below the directory `prefix` (components joined by "/"; "" is the root). */
export function within(path: string, prefix: string): boolean {
  return prefix === '' || path === prefix || path.startsWith(`${prefix}/`);
}
