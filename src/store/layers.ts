/**
 * Unpacked layers: layers/<diffID hex>/diff is one layer in overlay format.
 *
 * A layer directory is keyed by its diffID, not by a chainID as Docker's
 * overlay2 driver does: each directory holds only that layer's own changes
 * (overlay stacks them at mount time), so its content depends on the layer
 * alone and two images sharing a layer share its directory whatever sits
 * below it. See docs/decisions.md.
 */
import { rename, rm, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { hexOf, type Digest, type DiffID } from '../digest.js';
import { readJSON, removeTree, writeJSON, type Store } from './store.js';

/** What layer.json records of an unpacked layer. */
export interface LayerRecord {
  diffID: DiffID;
  /** Bytes of regular-file content in the layer. */
  size: number;
  entries: number;
  unpacked: string;
  /** Layer blobs (compressed digests) verified to decompress to this layer. */
  blobs?: Digest[];
}

/** Returns layers/<hex>, the directory of one layer (diff/ and layer.json inside). */
export function layerDir(store: Store, diffID: DiffID): string {
  return store.path('layers', hexOf(diffID));
}

/** Returns the overlay lower directory of a layer. */
export function layerDiffDir(store: Store, diffID: DiffID): string {
  return join(layerDir(store, diffID), 'diff');
}

/** True when the layer is unpacked and complete (its directory exists only once complete). */
export async function hasLayer(store: Store, diffID: DiffID): Promise<boolean> {
  try {
    await stat(join(layerDir(store, diffID), 'layer.json'));
    return true;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return false;
    throw err;
  }
}

export function readLayerRecord(store: Store, diffID: DiffID): Promise<LayerRecord | undefined> {
  return readJSON<LayerRecord>(join(layerDir(store, diffID), 'layer.json'));
}

/** Rewrites a stored layer's layer.json. Call with the layer's lock held. */
export function writeLayerRecord(store: Store, rec: LayerRecord): Promise<void> {
  return writeJSON(store, join(layerDir(store, rec.diffID), 'layer.json'), rec);
}

/**
 * Publishes a layer unpacked into tmpDir/diff: writes tmpDir/layer.json,
 * then renames tmpDir to the layer's final name. Call with the layer's lock
 * held. If the layer appeared meanwhile, tmpDir is discarded.
 */
export async function commitLayer(store: Store, tmpDir: string, rec: LayerRecord): Promise<void> {
  await writeJSON(store, join(tmpDir, 'layer.json'), rec);
  try {
    await rename(tmpDir, layerDir(store, rec.diffID));
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code !== 'ENOTEMPTY' && code !== 'EEXIST') throw err;
    await rm(tmpDir, { recursive: true, force: true });
  }
}

/** Removes a layer directory. It is first renamed into tmp/ so it vanishes atomically. */
export function removeLayer(store: Store, diffID: DiffID): Promise<void> {
  return removeTree(store, layerDir(store, diffID), 'rm-layer');
}
