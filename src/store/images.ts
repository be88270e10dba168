/**
 * Image records and tags. An image's id is its config digest, as in Docker.
 * A record lists what the image needs from the store (manifest, config and
 * layer blobs, layer directories); tags in repositories.json point at ids.
 */
import { readdir, readFile, unlink } from 'node:fs/promises';
import { blobPath } from './blobs.js';
import { hexOf, type Digest, type DiffID } from '../digest.js';
import { parseImageConfig, type Descriptor, type ImageConfig, type Platform } from '../image/index.js';
import { readJSON, writeJSON, type Store } from './store.js';

/** What the store knows of one image. */
export interface ImageRecord {
  id: Digest;
  /** Digest of the image manifest (the platform-specific one). */
  manifestDigest: Digest;
  manifestMediaType: string;
  /** Digest of the index the manifest was picked from, when there was one. */
  indexDigest?: Digest;
  config: Descriptor;
  layers: Descriptor[];
  diffIDs: DiffID[];
  platform: Platform;
  /** Repository names with digests it was pulled as ("docker.io/library/busybox@sha256:…"). */
  repoDigests: string[];
  created?: string;
  pulled: string;
}

/** tag ("registry/repository:tag") → image id */
export type Repositories = Record<string, Digest>;

function recordPath(store: Store, id: Digest): string {
  return store.path('images', `${hexOf(id)}.json`);
}

export function readImageRecord(store: Store, id: Digest): Promise<ImageRecord | undefined> {
  return readJSON<ImageRecord>(recordPath(store, id));
}

/** Writes rec atomically. Call with the metadata lock held. */
export function writeImageRecord(store: Store, rec: ImageRecord): Promise<void> {
  return writeJSON(store, recordPath(store, rec.id), rec);
}

/** Removes an image record. Call with the metadata lock held. */
export async function removeImageRecord(store: Store, id: Digest): Promise<void> {
  await unlink(recordPath(store, id)).catch((err: NodeJS.ErrnoException) => {
    if (err.code !== 'ENOENT') throw err;
  });
}

/** Lists every image record in the store. */
export async function listImageRecords(store: Store): Promise<ImageRecord[]> {
  const names = (await readdir(store.path('images'))).filter((n) => n.endsWith('.json'));
  const records = await Promise.all(
    names.map((n) => readJSON<ImageRecord>(store.path('images', n))),
  );
  return records.filter((r): r is ImageRecord => r !== undefined);
}

export async function readRepositories(store: Store): Promise<Repositories> {
  return (await readJSON<Repositories>(store.path('repositories.json'))) ?? {};
}

/** Replaces repositories.json. Call with the metadata lock held. */
export function writeRepositories(store: Store, repos: Repositories): Promise<void> {
  return writeJSON(store, store.path('repositories.json'), repos);
}

/** Reads an image's config from its blob, checked as a pull checks it. */
export async function readImageConfig(store: Store, rec: ImageRecord): Promise<ImageConfig> {
  return parseImageConfig(await readFile(blobPath(store, rec.config.digest)));
}

/**
 * Finds an image by what a user typed: an image id or a unique prefix of one
 * (12 hex digits or more, with or without "sha256:"), or a reference whose
 * tag or digest the store holds. Returns undefined when nothing matches.
 * `parse` turns the text into a reference (it throws on a malformed one).
 */
export async function lookupImage(
  store: Store,
  text: string,
  parse: (s: string) => { registry: string; repository: string; tag?: string; digest?: Digest },
): Promise<ImageRecord | undefined> {
  const idMatch = /^(?:sha256:)?([0-9a-f]{12,64})$/.exec(text);
  if (idMatch) {
    const prefix = idMatch[1]!;
    const names = (await readdir(store.path('images'))).filter((n) => n.endsWith('.json') && n.startsWith(prefix));
    if (names.length === 1) return readJSON<ImageRecord>(store.path('images', names[0]!));
  }
  const ref = parse(text);
  const name = `${ref.registry}/${ref.repository}`;
  if (ref.digest !== undefined) {
    const records = await listImageRecords(store);
    return records.find((r) => r.repoDigests.includes(`${name}@${ref.digest}`) || r.manifestDigest === ref.digest);
  }
  const id = (await readRepositories(store))[`${name}:${ref.tag}`];
  return id === undefined ? undefined : readImageRecord(store, id);
}

/**
 * Cached facts derived from an image's immutable content (resolved users),
 * in images/<hex>.cache. Best effort: a missing or unreadable cache is
 * recomputed; concurrent writers write the same facts.
 */
export type ImageCache = Record<string, unknown>;

function cachePath(store: Store, id: Digest): string {
  return store.path('images', `${hexOf(id)}.cache`);
}

export async function readImageCache(store: Store, id: Digest): Promise<ImageCache> {
  try {
    return (await readJSON<ImageCache>(cachePath(store, id))) ?? {};
  } catch {
    return {};
  }
}

export async function writeImageCache(store: Store, id: Digest, cache: ImageCache): Promise<void> {
  await writeJSON(store, cachePath(store, id), cache).catch(() => {});
}

/** Removes an image's cache file. */
export async function removeImageCache(store: Store, id: Digest): Promise<void> {
  await unlink(cachePath(store, id)).catch(() => {});
}
