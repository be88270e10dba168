/**
 * Image efficiency, as dive measures it, computed in one streaming pass
 * over the merged layers.
 *
 * dive (github.com/wagoodman/dive, filetree/efficiency.go) visits, layer by
 * layer, every leaf of each layer's own tree (a non-directory, or a
 * directory holding nothing in that layer) and records per path its
 * "nodes": the size each layer gives it. A whiteout's size is what it
 * deletes: the file bytes below it in the layers under it when it deletes
 * a directory, 0 when it deletes anything else. Then
 *
 *   score = Σ over paths of the smallest size seen
 *         / Σ over paths of the sum of the sizes seen        (1 when empty)
 *
 * and a path seen in two layers or more is an inefficiency whose "total
 * space" is that sum; dive's "potential wasted space" adds them up (it
 * counts every copy, the visible one included).
 *
 * minidock reports that figure as potentialWastedBytes, and beside it the
 * exact bytes each layer stores that the final image does not show
 * (overwritten or deleted by a later layer): wastedBytes, per layer and in
 * total. Where dive has no rule of its own, minidock counts an opaque
 * directory like a whiteout of the directory it replaces (its hidden bytes
 * are one node at the directory's path), and a hard link's later names as
 * 0 bytes, as their tar entries carry no content.
 *
 * Memory: one number per directory level per view, the pending whiteouts
 * (one per layer at most on any path) and the largest offenders kept; not
 * one record per path, as dive keeps.
 */
import { mergeWalks, View, type Row } from './merge.js';
import { walkLayer } from './walk.js';

/** One path seen in two layers or more (dive's inefficiency). */
export interface Offender {
  path: string;
  /** Layers (1-based) with a node at this path. */
  layers: number[];
  /** dive's "total space": the sum of the sizes of its nodes. */
  totalBytes: number;
  /** What of that the final image does not show. */
  wastedBytes: number;
}

/** The efficiency of an image. */
export interface Efficiency {
  /** dive's score, 0..1. */
  score: number;
  /** Bytes stored in the layers that the final image does not show. */
  wastedBytes: number;
  /** dive's "potential wasted space": Σ totalBytes over every offender. */
  potentialWastedBytes: number;
  /** File bytes stored in all layers. */
  totalBytes: number;
  /** Per layer, bottom first: the bytes it stores and the part of them the final image does not show. */
  layers: { bytes: number; wastedBytes: number }[];
  /** The largest offenders by totalBytes, largest first. */
  offenders: Offender[];
  /** Number of offenders (all of them, not only those listed). */
  offenderCount: number;
}

interface PathNodes {
  path: string;
  layers: number[];
  sizes: number[];
  wasted: number;
  unresolved: number;
}

interface PendingWhiteout {
  node: PathNodes;
  slot: number;
  path: string;
  depth: number;
  view: View;
}

/** Options of measureEfficiency. */
export interface EfficiencyOptions {
  /** How many offenders to keep (default 20). */
  top?: number;
}

/**
 * Measures the efficiency of the image whose layer diff directories are
 * `layers`, bottom first. Reads only.
 */
export function measureEfficiency(layers: string[], options: EfficiencyOptions = {}): Efficiency {
  const keep = options.top ?? 20;
  const n = layers.length;
  const final = new View(n - 1);
  const perLayer = layers.map(() => ({ bytes: 0, wastedBytes: 0 }));
  const ancestors: Row[] = [];
  let pending: PendingWhiteout[] = [];
  let minSum = 0;
  let totalSum = 0;
  let potential = 0;
  let wasted = 0;
  let offenderCount = 0;
  const offenders: Offender[] = [];

  const finish = (node: PathNodes) => {
    let min = Infinity;
    let sum = 0;
    for (const s of node.sizes) {
      min = Math.min(min, s);
      sum += s;
    }
    minSum += min;
    totalSum += sum;
    if (node.sizes.length < 2) return;
    potential += sum;
    offenderCount++;
    if (offenders.length === keep && keep > 0 && offenders[keep - 1]!.totalBytes >= sum) return;
    if (keep === 0) return;
    const o: Offender = { path: node.path, layers: node.layers.map((l) => l + 1), totalBytes: sum, wastedBytes: node.wasted };
    let i = offenders.length;
    while (i > 0 && offenders[i - 1]!.totalBytes < sum) i--;
    offenders.splice(i, 0, o);
    if (offenders.length > keep) offenders.pop();
  };

  for (const row of mergeWalks(layers.map((d) => walkLayer(d)))) {
    ancestors.length = row.depth - 1;
    // Whiteouts whose subtree ends here are complete.
    pending = pending.filter((p) => {
      if (row.depth > p.depth && row.path.startsWith(`${p.path}/`)) return true;
      if (--p.node.unresolved === 0) finish(p.node);
      return false;
    });
    for (const p of pending) {
      const v = p.view.visit(row);
      if (v !== undefined) p.node.sizes[p.slot]! += v.entry.bytes;
    }

    const shown = final.visit(row);
    const node: PathNodes = { path: row.path, layers: [], sizes: [], wasted: 0, unresolved: 0 };
    for (let i = 0; i < n; i++) {
      const e = row.entries[i];
      if (e === undefined) continue;
      perLayer[i]!.bytes += e.bytes;
      if (e.bytes > 0 && shown?.layer !== i) {
        perLayer[i]!.wastedBytes += e.bytes;
        node.wasted += e.bytes;
        wasted += e.bytes;
      }
      const deletes = e.kind === 'whiteout' || (e.kind === 'dir' && e.opaque === true && i > 0);
      let below: ReturnType<View['visit']>;
      let view: View | undefined;
      if (deletes && i > 0) {
        // What layers 0..i-1 show here; a directory's file bytes are summed as its subtree passes.
        view = new View(i - 1);
        for (const a of ancestors) view.visit(a);
        below = view.visit(row);
      }
      if (e.kind === 'whiteout' || below?.entry.kind === 'dir') {
        node.layers.push(i);
        node.sizes.push(0);
        if (below?.entry.kind === 'dir') {
          node.unresolved++;
          pending.push({ node, slot: node.sizes.length - 1, path: row.path, depth: row.depth, view: view! });
        }
        continue;
      }
      if (e.kind === 'dir' && e.hasChildren) continue;
      node.layers.push(i);
      node.sizes.push(e.bytes);
    }
    if (node.layers.length > 0 && node.unresolved === 0) finish(node);
    ancestors.push(row);
  }
  for (const p of pending) if (--p.node.unresolved === 0) finish(p.node);

  return {
    score: totalSum === 0 ? 1 : minSum / totalSum,
    wastedBytes: wasted,
    potentialWastedBytes: potential,
    totalBytes: perLayer.reduce((s, l) => s + l.bytes, 0),
    layers: perLayer,
    offenders,
    offenderCount,
  };
}
