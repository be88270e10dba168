/**
 * Removing an image and freeing what nothing else uses.
 */
import type { Digest, DiffID } from '../digest.js';
import { hexOf } from '../digest.js';
import { removeBlob } from './blobs.js';
import { listContainers } from './containers.js';
import { listImageRecords, removeImageCache, removeImageRecord, type ImageRecord } from './images.js';
import { removeLayer } from './layers.js';
import { withLock } from './locks.js';
import type { Store } from './store.js';

/**
 * Deletes image rec's record, then every blob and layer directory of it
 * that no other image and no container uses. Call with the metadata lock
 * held; each layer is removed under its own lock, so a pull unpacking the
 * same layer is not cut short. Returns the digests of what was freed.
 */
export async function deleteImage(store: Store, rec: ImageRecord): Promise<{ blobs: Digest[]; layers: DiffID[] }> {
  await removeImageRecord(store, rec.id);
  await removeImageCache(store, rec.id);

  const keepBlobs = new Set<string>();
  const keepLayers = new Set<string>();
  for (const other of await listImageRecords(store)) {
    for (const d of [other.manifestDigest, other.indexDigest, other.config.digest, ...other.layers.map((l) => l.digest)]) {
      if (d) keepBlobs.add(d);
    }
    other.diffIDs.forEach((d) => keepLayers.add(d));
  }
  for (const c of await listContainers(store)) c.diffIDs.forEach((d) => keepLayers.add(d));

  const blobs = [rec.manifestDigest, rec.indexDigest, rec.config.digest, ...rec.layers.map((l) => l.digest)].filter(
    (d): d is Digest => d !== undefined && !keepBlobs.has(d),
  );
  const layers = rec.diffIDs.filter((d) => !keepLayers.has(d));
  for (const d of new Set(blobs)) await removeBlob(store, d);
  for (const d of new Set(layers)) {
    await withLock(store, `layer-${hexOf(d)}`, () => removeLayer(store, d), { discard: true });
  }
  return { blobs, layers };
}
