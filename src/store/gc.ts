/**
 * Garbage: removing images and what nothing else uses, pruning, measuring
 * what the store holds, and checking it.
 */
import { createReadStream } from 'node:fs';
import { lstat, readdir, readlink, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { pipeline } from 'node:stream/promises';
import type { Digest, DiffID } from '../digest.js';
import { DigestingStream, hexOf } from '../digest.js';
import { removeBlob, statBlob } from './blobs.js';
import { containerDir, listContainers, type ContainerRecord } from './containers.js';
import {
  listImageRecords,
  readRepositories,
  removeImageCache,
  removeImageRecord,
  writeRepositories,
  type ImageRecord,
} from './images.js';
import {
  ensureLayerLink,
  layerDir,
  layerLinksDir,
  layerTreeDigest,
  readLayerRecord,
  removeLayer,
  type LayerRecord,
} from './layers.js';
import { contentLock, metadataLock, withLock } from './locks.js';
import { readJSON, removeRecursive, type Store } from './store.js';

/** The blobs an image record names: manifest, index, config and layers. */
export function imageBlobs(rec: ImageRecord): Digest[] {
  const all = [rec.manifestDigest, rec.indexDigest, rec.config.digest, ...rec.layers.map((l) => l.digest)];
  return [...new Set(all.filter((d): d is Digest => d !== undefined))];
}

/** What was freed, by digest, and how many bytes that gave back. */
export interface Freed {
  blobs: Digest[];
  layers: DiffID[];
  bytes: number;
}

/** Blobs and layers that images and containers keep, leaving out the image `except`. */
async function keptContent(store: Store, except?: Digest): Promise<{ blobs: Set<string>; layers: Set<string> }> {
  const blobs = new Set<string>();
  const layers = new Set<string>();
  for (const rec of await listImageRecords(store)) {
    if (rec.id === except) continue;
    imageBlobs(rec).forEach((d) => blobs.add(d));
    rec.diffIDs.forEach((d) => layers.add(d));
  }
  for (const c of await listContainers(store)) c.diffIDs.forEach((d) => layers.add(d));
  return { blobs, layers };
}

/** Removes blobs and layers, each layer under its own lock; returns what was freed. */
async function freeContent(store: Store, blobs: Digest[], layers: DiffID[]): Promise<Freed> {
  const freed: Freed = { blobs: [], layers: [], bytes: 0 };
  for (const d of new Set(blobs)) {
    const size = await statBlob(store, d);
    await removeBlob(store, d);
    if (size === undefined) continue;
    freed.blobs.push(d);
    freed.bytes += size;
  }
  for (const d of new Set(layers)) {
    await withLock(
      store,
      `layer-${hexOf(d)}`,
      async () => {
        const rec = await readLayerRecord(store, d).catch(() => undefined);
        await removeLayer(store, d);
        freed.layers.push(d);
        freed.bytes += rec?.size ?? 0;
      },
      { discard: true },
    );
  }
  return freed;
}

/**
 * Deletes image rec's record, then every blob and layer directory of it
 * that no other image and no container uses. Call with the content lock
 * and the metadata lock held (in that order); each layer is removed under its own lock, so a pull unpacking the
 * same layer is not cut short. Returns what was freed.
 */
export async function deleteImage(store: Store, rec: ImageRecord): Promise<Freed> {
  await removeImageRecord(store, rec.id);
  await removeImageCache(store, rec.id);
  const keep = await keptContent(store, rec.id);
  return freeContent(
    store,
    imageBlobs(rec).filter((d) => !keep.blobs.has(d)),
    rec.diffIDs.filter((d) => !keep.layers.has(d)),
  );
}

/** One removed image, as image prune reports it. */
export interface PrunedImage {
  id: Digest;
  untagged: string[];
  freed: Freed;
}

/**
 * Removes the images no container uses: only untagged ("dangling") ones,
 * or with `all` every one, untagging it first. Takes the content and
 * metadata locks.
 */
export async function pruneImages(store: Store, options: { all?: boolean } = {}): Promise<PrunedImage[]> {
  return withContentAndMetadata(store, async () => {
    const repos = await readRepositories(store);
    const used = new Set((await listContainers(store)).map((c) => c.imageId));
    const pruned: PrunedImage[] = [];
    for (const rec of await listImageRecords(store)) {
      const tags = Object.keys(repos).filter((k) => repos[k] === rec.id);
      if (used.has(rec.id) || (tags.length > 0 && !options.all)) continue;
      for (const t of tags) delete repos[t];
      await writeRepositories(store, repos);
      pruned.push({ id: rec.id, untagged: tags, freed: await deleteImage(store, rec) });
    }
    return pruned;
  });
}

/**
 * Returns the bytes of regular files under path, each inode counted once
 * (0 for a missing path).
 */
export async function treeSize(path: string): Promise<number> {
  const seen = new Set<number>();
  const visit = async (p: string): Promise<number> => {
    const st = await lstat(p).catch(() => undefined);
    if (st === undefined) return 0;
    if (st.isDirectory()) {
      let sum = 0;
      for (const name of await readdir(p).catch(() => [] as string[])) sum += await visit(join(p, name));
      return sum;
    }
    if (!st.isFile() || seen.has(st.ino)) return 0;
    seen.add(st.ino);
    return st.size;
  };
  return visit(path);
}

/** A container's writable layer size (what removing it gives back). */
export function containerSize(store: Store, id: string): Promise<number> {
  return treeSize(join(containerDir(store, id), 'upper'));
}

/**
 * Removes what no image and no container refers to: blobs, layer
 * directories, links to missing layers, tmp/ entries of processes that
 * are gone (left by a killed minidock), and partial downloads. Takes the content lock, so no pull
 * is halfway (its blobs stored, its image not yet recorded), then the
 * metadata lock.
 */
export async function pruneUnreferenced(store: Store): Promise<Freed> {
  return withContentAndMetadata(store, async () => {
    const keep = await keptContent(store);
    const blobs = (await readdir(store.path('blobs', 'sha256')))
      .map((hex) => `sha256:${hex}` as Digest)
      .filter((d) => !keep.blobs.has(d));
    const layers = (await listLayerDirs(store)).map((hex) => `sha256:${hex}` as DiffID).filter((d) => !keep.layers.has(d));
    const freed = await freeContent(store, blobs, layers);
    await removeDanglingLinks(store);
    await sweepTmp(store);
    await removePartialDownloads(store);
    return freed;
  });
}

/**
 * Removes the partial layer downloads that killed or failed pulls kept in
 * tmp/ for the next pull to resume. Only under the content lock held
 * exclusively, when no pull is writing one.
 */
async function removePartialDownloads(store: Store): Promise<void> {
  for (const name of await readdir(store.path('tmp')).catch(() => [] as string[])) {
    if (name.startsWith('partial-')) await rm(store.path('tmp', name), { force: true });
  }
}

/** Runs fn holding the content lock exclusively, then the metadata lock. */
export function withContentAndMetadata<T>(store: Store, fn: () => Promise<T>): Promise<T> {
  return withLock(store, contentLock, () => withLock(store, metadataLock, fn));
}

/** The names of the layer directories under layers/ (64 hex digits each). */
async function listLayerDirs(store: Store): Promise<string[]> {
  return (await readdir(store.path('layers'))).filter((n) => /^[0-9a-f]{64}$/.test(n));
}

async function removeDanglingLinks(store: Store): Promise<string[]> {
  const dir = layerLinksDir(store);
  const removed: string[] = [];
  for (const name of await readdir(dir).catch(() => [] as string[])) {
    const target = await readlink(join(dir, name)).catch(() => undefined);
    const ok = target !== undefined && (await lstat(join(dir, target, '..', 'layer.json')).catch(() => undefined)) !== undefined;
    if (ok) continue;
    await rm(join(dir, name), { force: true });
    removed.push(name);
  }
  return removed;
}

/**
 * Removes what killed commands left in tmp/: entries are named
 * "<prefix>.<pid>.<random>", and an entry whose process is gone is garbage.
 */
export async function sweepTmp(store: Store): Promise<void> {
  for (const name of await readdir(store.path('tmp')).catch(() => [] as string[])) {
    const pid = Number(name.split('.').at(-2));
    if (!Number.isInteger(pid) || pid <= 0 || pid === process.pid) continue;
    try {
      process.kill(pid, 0);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ESRCH') {
        await removeRecursive(store.path('tmp', name)).catch(() => {});
      }
    }
  }
}

/** What the store holds, for `system df`. */
export interface DiskUsage {
  images: { rec: ImageRecord; tags: string[]; size: number; shared: number; unique: number; containers: number }[];
  containers: { rec: ContainerRecord; size: number }[];
  layers: { diffID: DiffID; size: number; images: number; containers: number }[];
}

/**
 * Measures images, containers and layers. An image's size is its layers'
 * unpacked bytes; the shared part is in layers that another image also
 * uses, the unique part in layers only it uses.
 */
export async function diskUsage(store: Store): Promise<DiskUsage> {
  const [records, repos, containers] = await Promise.all([
    listImageRecords(store),
    readRepositories(store),
    listContainers(store),
  ]);
  const layerSizes = new Map<string, number>();
  const imagesOf = new Map<string, number>();
  const containersOf = new Map<string, number>();
  for (const hex of await listLayerDirs(store)) {
    const rec: LayerRecord | undefined = await readLayerRecord(store, `sha256:${hex}` as DiffID).catch(() => undefined);
    layerSizes.set(`sha256:${hex}`, rec?.size ?? 0);
  }
  for (const rec of records) new Set(rec.diffIDs).forEach((d) => imagesOf.set(d, (imagesOf.get(d) ?? 0) + 1));
  for (const c of containers) new Set(c.diffIDs).forEach((d) => containersOf.set(d, (containersOf.get(d) ?? 0) + 1));

  const images = records.map((rec) => {
    let shared = 0;
    let unique = 0;
    for (const d of new Set(rec.diffIDs)) {
      const size = layerSizes.get(d) ?? 0;
      if ((imagesOf.get(d) ?? 0) > 1) shared += size;
      else unique += size;
    }
    return {
      rec,
      tags: Object.keys(repos).filter((k) => repos[k] === rec.id),
      size: shared + unique,
      shared,
      unique,
      containers: containers.filter((c) => c.imageId === rec.id).length,
    };
  });
  const sized = await Promise.all(containers.map(async (rec) => ({ rec, size: await containerSize(store, rec.id) })));
  const layers = [...layerSizes].map(([d, size]) => ({
    diffID: d as DiffID,
    size,
    images: imagesOf.get(d) ?? 0,
    containers: containersOf.get(d) ?? 0,
  }));
  return { images, containers: sized, layers };
}

/** One thing `system check` found wrong, and whether it was repaired. */
export interface Problem {
  kind: 'blob' | 'layer' | 'link' | 'record' | 'image';
  /** The digest, diffID or name concerned. */
  subject: string;
  message: string;
  repaired: boolean;
}

/** Returns the sha256 digest of a file, streaming it. */
async function digestFile(path: string): Promise<Digest> {
  const hashing = new DigestingStream();
  await pipeline(createReadStream(path), hashing, async (source) => {
    for await (const _ of source);
  });
  return hashing.digest;
}

/** Says what is wrong with a stored layer directory, or undefined when nothing is. */
async function layerFault(store: Store, hex: string): Promise<string | undefined> {
  const dir = join(store.path('layers'), hex);
  let rec: LayerRecord | undefined;
  try {
    rec = await readLayerRecord(store, `sha256:${hex}` as DiffID);
  } catch (err) {
    return `unreadable layer.json: ${(err as Error).message}`;
  }
  if (rec === undefined) return 'no layer.json (never completed)';
  if (rec.diffID !== `sha256:${hex}`) return `layer.json names ${rec.diffID}`;
  const diff = await lstat(join(dir, 'diff')).catch(() => undefined);
  if (!diff?.isDirectory()) return 'no diff/ directory';
  if (rec.tree !== undefined) {
    const tree = await layerTreeDigest(join(dir, 'diff'));
    if (tree !== rec.tree) return `its files differ from what was unpacked (listing ${tree}, recorded ${rec.tree})`;
  }
  return undefined;
}

/**
 * Verifies every blob against its digest and every layer directory for
 * completeness (its layer.json, and its files' listing against the one
 * recorded when it was unpacked), every layer link, and that every image's
 * blobs and layers are present. With `repair`, removes bad blobs and
 * layers (under their layer's lock) and recreates missing links, so the
 * next pull fetches again what was removed; an image left incomplete is
 * reported, not removed. Holds the content lock (shared, or exclusively to
 * repair) throughout.
 */
export function checkStore(store: Store, options: { repair?: boolean } = {}): Promise<Problem[]> {
  const repair = options.repair ?? false;
  return withLock(store, contentLock, () => checkLocked(store, repair), { shared: !repair });
}

async function checkLocked(store: Store, repair: boolean): Promise<Problem[]> {
  const problems: Problem[] = [];

  for (const hex of await readdir(store.path('blobs', 'sha256'))) {
    const path = join(store.path('blobs', 'sha256'), hex);
    let actual: Digest;
    try {
      actual = await digestFile(path);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') continue; // removed meanwhile
      throw err;
    }
    if (actual === `sha256:${hex}`) continue;
    if (repair) await rm(path, { force: true });
    problems.push({ kind: 'blob', subject: `sha256:${hex}`, message: `content hashes to ${actual}`, repaired: repair });
  }

  for (const name of await readdir(store.path('layers'))) {
    if (name === 'l') continue;
    if (!/^[0-9a-f]{64}$/.test(name)) {
      if (repair) await rm(store.path('layers', name), { recursive: true, force: true });
      problems.push({ kind: 'layer', subject: name, message: 'not a layer directory name', repaired: repair });
      continue;
    }
    const diffID = `sha256:${name}` as DiffID;
    await withLock(store, `layer-${name}`, async () => {
      const fault = await layerFault(store, name).catch((err: NodeJS.ErrnoException) =>
        err.code === 'ENOENT' ? undefined : `unreadable: ${err.message}`,
      );
      if (fault === undefined) return;
      if (repair) await removeLayer(store, diffID);
      problems.push({ kind: 'layer', subject: diffID, message: fault, repaired: repair });
    });
  }

  for (const hex of await listLayerDirs(store)) {
    const diffID = `sha256:${hex}` as DiffID;
    const rec = await readLayerRecord(store, diffID).catch(() => undefined);
    if (rec?.link === undefined) continue;
    const target = await readlink(join(layerLinksDir(store), rec.link)).catch(() => undefined);
    if (target === `../${hex}/diff`) continue;
    if (repair) await ensureLayerLink(store, diffID);
    problems.push({ kind: 'link', subject: diffID, message: `link l/${rec.link} is missing or wrong`, repaired: repair });
  }
  // Links leading nowhere are garbage a crash may leave (see removeLayer),
  // not damage: system prune removes them.

  problems.push(...(await withLock(store, metadataLock, () => checkRecords(store, repair))));

  // Records that do not parse were reported above; the rest are checked
  // for their content.
  const records = await Promise.all(
    (await readdir(store.path('images'))).filter((n) => n.endsWith('.json')).map((n) => readJSON<ImageRecord>(store.path('images', n)).catch(() => undefined)),
  );
  for (const rec of records) {
    if (rec === undefined) continue;
    const missing: string[] = [];
    for (const d of imageBlobs(rec)) if ((await statBlob(store, d)) === undefined) missing.push(`blob ${d}`);
    for (const d of rec.diffIDs) {
      const record = await lstat(join(layerDir(store, d), 'layer.json')).catch(() => undefined);
      if (record === undefined) missing.push(`layer ${d}`);
    }
    if (missing.length === 0) continue;
    problems.push({ kind: 'image', subject: rec.id, message: `missing ${missing.join(', ')}`, repaired: false });
  }
  return problems;
}


/** True when the file at path parses as JSON (a missing file counts as sound). */
async function parses(path: string): Promise<boolean> {
  return readJSON(path).then(
    () => true,
    () => false,
  );
}

/**
 * Finds the records every command reads (image records, tags, container
 * states) that do not parse, and tags that name no image. With repair, a
 * broken image record goes (its content is garbage for the next prune), the
 * tags are kept where they parse and point somewhere, and a container
 * whose state is unreadable is removed.
 */
async function checkRecords(store: Store, repair: boolean): Promise<Problem[]> {
  const problems: Problem[] = [];
  const found = (subject: string, message: string) => problems.push({ kind: 'record', subject, message, repaired: repair });

  for (const name of await readdir(store.path('images')).catch(() => [] as string[])) {
    if (!name.endsWith('.json') || (await parses(store.path('images', name)))) continue;
    if (repair) {
      await rm(store.path('images', name), { force: true });
      await rm(store.path('images', `${name.slice(0, -5)}.cache`), { force: true });
    }
    found(`images/${name}`, 'not valid JSON');
  }

  const reposPath = store.path('repositories.json');
  if (!(await parses(reposPath))) {
    if (repair) await writeRepositories(store, {});
    found('repositories.json', 'not valid JSON; repair drops every tag (images stay, untagged)');
  } else {
    const repos = await readRepositories(store);
    const dangling: string[] = [];
    for (const [tag, id] of Object.entries(repos)) {
      const record = store.path('images', `${hexOf(id)}.json`);
      if ((await lstat(record).catch(() => undefined)) !== undefined && (await parses(record))) continue;
      dangling.push(tag);
      found(`tag ${tag}`, `names image ${id}, which the store does not hold`);
    }
    if (repair && dangling.length > 0) {
      for (const tag of dangling) delete repos[tag];
      await writeRepositories(store, repos);
    }
  }

  for (const id of await readdir(store.path('containers')).catch(() => [] as string[])) {
    if (await parses(join(containerDir(store, id), 'state.json'))) continue;
    if (repair) await removeRecursive(containerDir(store, id));
    found(`container ${id}`, 'state.json is not valid JSON');
  }
  return problems;
}
