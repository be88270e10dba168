/**
 * Unpacked layers: layers/<diffID hex>/diff is one layer in overlay format.
 *
 * A layer directory is keyed by its diffID, not by a chainID as Docker's
 * overlay2 driver does: each directory holds only that layer's own changes
 * (overlay stacks them at mount time), so its content depends on the layer
 * alone and two images sharing a layer share its directory whatever sits
 * below it. See docs/decisions.md.
 *
 * layers/l/<short> is a symlink to ../<diffID hex>/diff, as in Docker's
 * overlay2 driver: overlay's mount options must fit in one page, and a
 * lower directory named l/<short> relative to layers/ costs 15 bytes where
 * its full path costs about 100.
 */
import { createHash } from 'node:crypto';
import { lstat, mkdir, readdir, readlink, rename, rm, stat, symlink, unlink } from 'node:fs/promises';
import { join } from 'node:path';
import { hexOf, type Digest, type DiffID } from '../digest.js';
import { MinidockError } from '../errors.js';
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
  /** The name of the layer's link under layers/l/ (absent for layers stored before links). */
  link?: string;
  /**
   * The digest of diff/'s listing as unpacked (see layerTreeDigest), which
   * `system check` compares with the directory (absent for layers stored
   * before it was recorded).
   */
  tree?: Digest;
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
  // The link first: it names the final directory, so until the rename it
  // dangles, and a layer directory never exists without its link.
  rec = { ...rec, link: await ensureLayerLink(store, rec.diffID) };
  await writeJSON(store, join(tmpDir, 'layer.json'), rec);
  try {
    await rename(tmpDir, layerDir(store, rec.diffID));
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code !== 'ENOTEMPTY' && code !== 'EEXIST') throw err;
    await rm(tmpDir, { recursive: true, force: true });
  }
}

/**
 * Removes a layer directory and its link. The directory is first renamed
 * into tmp/ so it vanishes atomically; the link goes after it, so a crash
 * in between leaves a dangling link (harmless, reused by the next unpack of
 * the layer, removed by system prune), never a layer without its link.
 * Call with the layer's lock held.
 */
export async function removeLayer(store: Store, diffID: DiffID): Promise<void> {
  await removeTree(store, layerDir(store, diffID), 'rm-layer');
  const target = linkTarget(diffID);
  for (const name of linkCandidates(diffID)) {
    const path = join(layerLinksDir(store), name);
    if ((await readlink(path).catch(() => undefined)) === target) await unlink(path).catch(() => {});
  }
}

/** Returns layers/l, the directory of the layers' short links. */
export function layerLinksDir(store: Store): string {
  return store.path('layers', 'l');
}

function linkTarget(diffID: DiffID): string {
  return `../${hexOf(diffID)}/diff`;
}

/**
 * The names a layer's link may have, shortest first: its diffID's first 12
 * hex digits, then 4 more at a time up to all 64. Two diffIDs share a
 * prefix only by chance (one in 2^48 for a pair at 12 digits), and the
 * full hex is the layer directory's own unique name.
 */
function linkCandidates(diffID: DiffID): string[] {
  const hex = hexOf(diffID);
  const names: string[] = [];
  for (let n = 12; n <= hex.length; n += 4) names.push(hex.slice(0, n));
  return names;
}

/**
 * Makes sure layers/l/<short> links to the layer's diff directory and
 * returns <short>. The name derives from the diffID, so every process
 * arrives at the same link; a name already taken by a link elsewhere (a
 * prefix collision, or anything that is not such a link) is never reused:
 * the existing entry's target is read back and, when it is not this
 * layer's, the next longer name is tried. Needs no lock: the link is made
 * by one symlink(2), which fails rather than replaces.
 */
export async function ensureLayerLink(store: Store, diffID: DiffID): Promise<string> {
  const dir = layerLinksDir(store);
  const target = linkTarget(diffID);
  await mkdir(dir, { recursive: true, mode: 0o755 });
  for (const name of linkCandidates(diffID)) {
    const path = join(dir, name);
    try {
      await symlink(target, path);
      return name;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') {
        throw new MinidockError('ERR_STORE', `link layer ${diffID}: ${(err as Error).message}`, { cause: err });
      }
    }
    const existing = await readlink(path).catch(() => undefined);
    if (existing === target) return name;
  }
  throw new MinidockError('ERR_STORE', `link layer ${diffID}: every name under ${dir} is taken by another entry`);
}

/**
 * Returns the digest of a directory tree's listing: for every entry, in
 * sorted order, its relative path, type and mode bits, owner, size (of
 * regular files), link target and device number. File contents, times and
 * xattrs are left out: the listing tells a complete layer from one missing
 * or holding other entries, quickly; the blob's digest covers the bytes.
 */
export async function layerTreeDigest(dir: string): Promise<Digest> {
  const hash = createHash('sha256');
  const visit = async (rel: string): Promise<void> => {
    const path = rel === '' ? dir : join(dir, rel);
    const st = await lstat(path);
    const target = st.isSymbolicLink() ? await readlink(path) : '';
    const size = st.isFile() ? st.size : 0;
    hash.update(`${rel}\0${st.mode.toString(8)}\0${st.uid}:${st.gid}\0${size}\0${target}\0${st.rdev}\n`);
    if (!st.isDirectory()) return;
    const names = (await readdir(path)).sort();
    for (const name of names) await visit(rel === '' ? name : join(rel, name));
  };
  await visit('');
  return `sha256:${hash.digest('hex')}` as Digest;
}
