/**
 * What one layer changes against the layers below it, and what one merged
 * filesystem changes against another: added, changed and deleted paths, in
 * path order, streamed.
 */
import fs from 'node:fs';
import { join } from 'node:path';
import { mergeWalks, View, within } from './merge.js';
import { walkLayer, type LayerEntry, type WalkOptions } from './walk.js';

/** A, C or D, as `docker diff` prints them. */
export type ChangeOp = 'A' | 'C' | 'D';

/** Why a path is deleted. */
export type DeletedBy = 'whiteout' | 'opaque';

/** One change, in path order. */
export interface Change {
  op: ChangeOp;
  path: string;
  /** The entry the change leaves (A, C), or the one it removes (D). */
  entry: LayerEntry;
  /** For D: a whiteout at this path, or an opaque directory above it. */
  deletedBy?: DeletedBy;
  /**
   * What disappears, and its file bytes: for D the path and all below it
   * (nothing for a whiteout over nothing), for C of a directory replaced
   * by a non-directory what it held.
   */
  removed?: { entries: number; bytes: number };
}

/** Options of layerChanges. */
export interface ChangesOptions {
  /** Only paths at or below this one (components). */
  under?: string[];
}

/**
 * Yields the changes the layer directory `layer` makes on top of the layers
 * `lowers` (diff directories, bottom first): A for a name the lower view
 * lacks, C for one it has (directories included, as `docker diff` shows
 * them), D for a whiteout (deletedBy "whiteout"; removed counts what it
 * hides) and for each name an opaque directory hides from below (deletedBy
 * "opaque"). Only the topmost path of a deleted subtree is yielded. Works
 * for a container's upper directory as for an image layer.
 */
export function* layerChanges(lowers: string[], layer: string, options: ChangesOptions = {}): Generator<Change> {
  const under = options.under ?? [];
  const prefix = under.join('/');
  const walkOpts: WalkOptions = { under };
  const top = lowers.length;
  const rows = mergeWalks([...lowers, layer].map((d) => walkLayer(d, walkOpts)));
  const below = new View(top - 1);
  const after = new View(top);
  // A deletion waiting for its subtree to be counted.
  let pending: { change: Change; depth: number } | undefined;
  // The depth of the last opaque directory the layer holds on the current path.
  const opaqueAt: number[] = [];

  for (const row of rows) {
    if (pending !== undefined && (row.depth <= pending.depth || !within(row.path, pending.change.path))) {
      if (within(pending.change.path, prefix)) yield pending.change;
      pending = undefined;
    }
    while (opaqueAt.length > 0 && opaqueAt[opaqueAt.length - 1]! >= row.depth) opaqueAt.pop();
    const lower = below.visit(row);
    const shown = after.visit(row);
    const own = row.entries[top];

    if (pending !== undefined) {
      // Inside a deleted or replaced subtree: count what goes.
      if (lower !== undefined) {
        pending.change.removed!.entries++;
        pending.change.removed!.bytes += lower.entry.bytes;
      }
      continue;
    }
    if (own !== undefined) {
      if (own.kind === 'dir' && own.opaque) opaqueAt.push(row.depth);
      if (own.kind === 'whiteout') {
        const removed = lower === undefined ? { entries: 0, bytes: 0 } : { entries: 1, bytes: lower.entry.bytes };
        const change: Change = { op: 'D', path: row.path, entry: lower?.entry ?? own, deletedBy: 'whiteout', removed };
        pending = { change, depth: row.depth };
        continue;
      }
      const change: Change = { op: lower === undefined ? 'A' : 'C', path: row.path, entry: own };
      if (lower !== undefined && lower.entry.kind === 'dir' && own.kind !== 'dir') {
        change.removed = { entries: 0, bytes: 0 };
        pending = { change, depth: row.depth };
        continue;
      }
      if (within(row.path, prefix)) yield change;
      continue;
    }
    if (lower !== undefined && shown === undefined) {
      // Gone without an entry of its own: an opaque directory of this layer above it.
      const removed = { entries: 1, bytes: lower.entry.bytes };
      const change: Change = { op: 'D', path: row.path, entry: lower.entry, deletedBy: 'opaque', removed };
      if (opaqueAt[opaqueAt.length - 1] === row.depth - 1) pending = { change, depth: row.depth };
    }
  }
  if (pending !== undefined && within(pending.change.path, prefix)) yield pending.change;
}

/**
 * Yields the entries of the merged view of `layers` (diff directories,
 * bottom first) in path order, each with the index of the layer it comes
 * from. With `under`, only that subtree (and its ancestors, which a caller
 * may skip by path).
 */
export function* mergedEntries(layers: string[], options: WalkOptions = {}): Generator<{ entry: LayerEntry; layer: number }> {
  const view = new View(layers.length - 1);
  for (const row of mergeWalks(layers.map((d) => walkLayer(d, options)))) {
    const v = view.visit(row);
    if (v !== undefined) yield v;
  }
}

/**
 * Yields what changes from the merged view of layers `a` to that of `b`
 * (diff directories, bottom first), as `docker diff` would between two
 * root filesystems: A for a path only b has, D for one only a has (only the
 * topmost of a deleted subtree), C for one whose type, mode, owner, size,
 * modification time, link target or content differs. Content is compared
 * only when all else is equal and the two are not the same file.
 */
export function* viewChanges(a: string[], b: string[]): Generator<Change> {
  const left = tagged(mergedEntries(a), a);
  const right = tagged(mergedEntries(b), b);
  let x = left.next();
  let y = right.next();
  let deleted: string | undefined;
  while (!x.done || !y.done) {
    const order = x.done ? 1 : y.done ? -1 : x.value.entry.key < y.value.entry.key ? -1 : x.value.entry.key > y.value.entry.key ? 1 : 0;
    if (order < 0) {
      const e = x.value!.entry;
      if (deleted === undefined || !within(e.path, deleted)) {
        deleted = e.path;
        yield { op: 'D', path: e.path, entry: e };
      }
      x = left.next();
    } else if (order > 0) {
      const e = y.value!.entry;
      yield { op: 'A', path: e.path, entry: e };
      y = right.next();
    } else {
      if (!sameEntry(x.value!, y.value!)) yield { op: 'C', path: y.value!.entry.path, entry: y.value!.entry };
      x = left.next();
      y = right.next();
    }
  }
}

interface Located {
  entry: LayerEntry;
  file: string;
}

function* tagged(entries: Generator<{ entry: LayerEntry; layer: number }>, dirs: string[]): Generator<Located> {
  for (const { entry, layer } of entries) yield { entry, file: join(dirs[layer]!, entry.path) };
}

function sameEntry(a: Located, b: Located): boolean {
  const x = a.entry;
  const y = b.entry;
  if (x.kind !== y.kind || x.mode !== y.mode || x.uid !== y.uid || x.gid !== y.gid) return false;
  if (x.size !== y.size || x.mtime !== y.mtime || x.target !== y.target) return false;
  if (x.device?.major !== y.device?.major || x.device?.minor !== y.device?.minor) return false;
  if (x.kind !== 'file' || a.file === b.file) return true;
  return sameContent(a.file, b.file);
}

/** Compares two files' bytes, 64 KiB at a time. */
function sameContent(p: string, q: string): boolean {
  const fa = fs.openSync(p, 'r');
  const fb = fs.openSync(q, 'r');
  try {
    const ba = Buffer.alloc(65536);
    const bb = Buffer.alloc(65536);
    for (;;) {
      const na = fs.readSync(fa, ba);
      const nb = fs.readSync(fb, bb);
      if (na !== nb || !ba.subarray(0, na).equals(bb.subarray(0, nb))) return false;
      if (na === 0) return true;
    }
  } finally {
    fs.closeSync(fa);
    fs.closeSync(fb);
  }
}
