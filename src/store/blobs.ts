/**
 * Content-addressed blobs: blobs/<algorithm>/<hex>. A blob reaches its final
 * name only by rename after its digest was checked, so a name never lies
 * about its content.
 */
import { open, rename, stat, unlink } from 'node:fs/promises';
import { algorithmOf, digestOf, hexOf, type Digest } from '../digest.js';
import { DigestMismatchError, MinidockError } from '../errors.js';
import { writeAtomic, type Store } from './store.js';

/** Returns the path of blob d (which may not exist). */
export function blobPath(store: Store, d: Digest): string {
  return store.path('blobs', algorithmOf(d), hexOf(d));
}

/** Returns the blob's size when the store holds it, else undefined. */
export async function statBlob(store: Store, d: Digest): Promise<number | undefined> {
  try {
    return (await stat(blobPath(store, d))).size;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw err;
  }
}

/** Stores bytes under digest d after checking that they hash to d. Idempotent. */
export async function writeBlobBytes(store: Store, d: Digest, bytes: Uint8Array, what = 'blob'): Promise<void> {
  const actual = digestOf(bytes);
  if (actual !== d) throw new DigestMismatchError(`${what} ${d}`, d, actual);
  if ((await statBlob(store, d)) === bytes.length) return;
  await writeAtomic(store, blobPath(store, d), bytes);
}

/**
 * Moves a fully written and already verified temp file to blob d's name,
 * fsyncing it first so a power loss cannot leave an empty file there. The
 * file must hold exactly `size` bytes: the bytes that were verified were
 * those of a stream, and this makes sure the file is no more than they.
 */
export async function commitBlobFile(store: Store, tmp: string, d: Digest, size: number): Promise<void> {
  const fh = await open(tmp, 'r');
  try {
    const actual = (await fh.stat()).size;
    if (actual !== size) {
      throw new MinidockError('ERR_INTERNAL', `[internal error] store blob ${d}: ${tmp} holds ${actual} bytes, not ${size}`);
    }
    await fh.sync();
  } finally {
    await fh.close();
  }
  await rename(tmp, blobPath(store, d));
}

/** Removes blob d; a missing blob is not an error. */
export async function removeBlob(store: Store, d: Digest): Promise<void> {
  await unlink(blobPath(store, d)).catch((err: NodeJS.ErrnoException) => {
    if (err.code !== 'ENOENT') throw err;
  });
}
