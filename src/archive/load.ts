/**
 * Reading images into the store from an archive: Docker's archive format
 * (manifest.json), an OCI image layout as a tar (oci-archive), or an OCI
 * image layout directory. A tar may be gzip-compressed.
 *
 * A tar is first extracted into the store's tmp/ (regular files only, under
 * names that stay inside the extraction directory; symlinks are kept as a
 * map and resolved by name, never followed on disk). Nothing in it is
 * trusted: every blob is stored only after its digest matched, and every
 * layer is unpacked and checked against the config's diffIDs as a pulled
 * one is. Extraction stops before an entry would leave the store's disk with
 * less than 5% (at least 1 GiB) free.
 */
import { createReadStream, createWriteStream } from 'node:fs';
import { mkdir, open, readFile, rm, stat, statfs } from 'node:fs/promises';
import { dirname, join, posix } from 'node:path';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { createGunzip } from 'node:zlib';
import { DigestingStream, digestOf, parseDigest, type Digest, type DiffID } from '../digest.js';
import { MinidockError } from '../errors.js';
import {
  hostPlatform,
  isIndex,
  isManifest,
  MediaType,
  parseImageConfig,
  parseManifest,
  selectPlatform,
  type Descriptor,
  type ImageConfig,
  type ImageIndex,
  type ImageManifest,
  type Platform,
} from '../image/index.js';
import type { Logger } from '../log.js';
import { recordImage, storeLayers } from '../pull/index.js';
import { parseReference } from '../reference.js';
import { contentLock, withLock, writeBlobBytes, type ImageRecord, type Store } from '../store/index.js';

export interface LoadOptions {
  logger?: Logger;
  platform?: Platform;
}

/** One image loaded: its record and the tags it was given. */
export interface LoadedImage {
  record: ImageRecord;
  tags: string[];
}

function bad(source: string, why: string, hint?: string): MinidockError {
  return new MinidockError('ERR_BAD_ARCHIVE', `load ${source}: ${why}`, { hint });
}

/** Files of an archive by their normalized relative names. */
class ArchiveFiles {
  constructor(
    readonly dir: string,
    readonly links: Map<string, string>,
    readonly source: string,
  ) {}

  /** Returns the on-disk path of name, resolving the archive's own symlinks. */
  resolve(name: string): string {
    let n = normalizeName(name);
    for (let hops = 0; n !== undefined && this.links.has(n); hops++) {
      if (hops > 16) throw bad(this.source, `too many links resolving ${JSON.stringify(name)}`);
      n = this.links.get(n);
    }
    if (n === undefined) throw bad(this.source, `${JSON.stringify(name)} leads outside the archive`);
    return join(this.dir, n);
  }

  async read(name: string): Promise<Buffer> {
    try {
      return await readFile(this.resolve(name));
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') throw bad(this.source, `${JSON.stringify(name)} is missing`);
      throw err;
    }
  }

  async exists(name: string): Promise<boolean> {
    return (await stat(this.resolve(name)).catch(() => undefined))?.isFile() ?? false;
  }

  /** Reads blob d of an OCI layout, verifying it. */
  async blob(d: Digest, what: string): Promise<Buffer> {
    const bytes = await this.read(blobName(d));
    const actual = digestOf(bytes);
    if (actual !== d) throw bad(this.source, `${what} ${d} hashes to ${actual}`);
    return bytes;
  }
}

function blobName(d: Digest): string {
  const [alg, hex] = d.split(':');
  return `blobs/${alg}/${hex}`;
}

/** Normalizes an archive member name; undefined when it leaves the archive. */
function normalizeName(name: string): string | undefined {
  const n = posix.normalize(name.replace(/^\.?\/+/, '')).replace(/\/+$/, '');
  if (n === '' || n === '.' || n === '..' || n.startsWith('../') || posix.isAbsolute(n)) return undefined;
  return n;
}

/** Extracts a (possibly gzip-compressed) tar into dir: regular files and symlinks only. */
async function extractTar(input: Readable, dir: string, source: string): Promise<Map<string, string>> {
  const { extract: makeExtract } = await import('tar-stream');
  const extract = makeExtract();
  const links = new Map<string, string>();

  // gzip is told by its first two bytes.
  const chunks = input[Symbol.asyncIterator]() as AsyncIterator<Buffer>;
  const first = await chunks.next();
  if (first.done) throw bad(source, 'the archive is empty');
  const rest = Readable.from(
    (async function* () {
      yield first.value;
      for (let next = await chunks.next(); !next.done; next = await chunks.next()) yield next.value;
    })(),
  );
  const gzip = first.value[0] === 0x1f && first.value[1] === 0x8b;
  const reading = (gzip ? pipeline(rest, createGunzip(), extract) : pipeline(rest, extract)).catch((err: Error) => {
    extract.destroy(err);
    throw err;
  });
  reading.catch(() => {});

  for await (const entry of extract) {
    const name = normalizeName(entry.header.name);
    const type = entry.header.type;
    if (name !== undefined && type === 'file') {
      // An archive can hold any amount of data its manifest never names (a
      // gzip of zeros is a thousand times smaller than its tar): stop
      // before an entry would leave the store's disk nearly full.
      const size = entry.header.size ?? 0;
      const room = await roomIn(dir);
      if (size > room) {
        throw bad(source, `its entry ${JSON.stringify(name)} of ${size} bytes would fill the store's disk (room for ${Math.max(room, 0)})`);
      }
      const path = join(dir, name);
      await mkdir(dirname(path), { recursive: true });
      await pipeline(entry, createWriteStream(path, { mode: 0o600 }));
      continue;
    }
    if (name !== undefined && type === 'symlink' && entry.header.linkname) {
      const target = normalizeName(posix.join(posix.dirname(name), entry.header.linkname));
      if (target !== undefined) links.set(name, target);
    }
    entry.resume();
  }
  await reading;
  return links;
}

/**
 * Bytes that may still be written under dir: what its filesystem has free,
 * less a reserve of 5% of its size (at least 1 GiB) kept for everything
 * else on the machine.
 */
async function roomIn(dir: string): Promise<number> {
  const fs = await statfs(dir);
  const reserve = Math.max(1 << 30, Math.ceil(fs.blocks * fs.bsize * 0.05));
  return fs.bavail * fs.bsize - reserve;
}

/** A layer file's descriptor, from its bytes: digest, size, compression from its magic. */
async function describeLayerFile(path: string): Promise<Descriptor> {
  const fh = await open(path, 'r');
  const magic = Buffer.alloc(4);
  try {
    await fh.read(magic, 0, 4, 0);
  } finally {
    await fh.close();
  }
  const hashing = new DigestingStream();
  await pipeline(createReadStream(path), hashing, async (s) => {
    for await (const _ of s);
  });
  const mediaType =
    magic[0] === 0x1f && magic[1] === 0x8b
      ? MediaType.ociLayerGzip
      : magic.readUInt32LE(0) === 0xfd2fb528
        ? MediaType.ociLayerZstd
        : MediaType.ociLayer;
  return { mediaType, digest: hashing.digest, size: hashing.size };
}

/** An image found in an archive, ready to be stored. */
interface ArchiveImage {
  manifestDigest: Digest;
  manifestMediaType: string;
  rawManifest: Buffer;
  manifest: ImageManifest;
  rawConfig: Buffer;
  config: ImageConfig;
  /** The on-disk path of each layer's file. */
  layerPaths: string[];
  tags: string[];
}

/** Turns a RepoTags entry or a name annotation into a tag key, or undefined when it is none. */
function tagKey(name: string): string | undefined {
  try {
    const ref = parseReference(name);
    return ref.tag === undefined ? undefined : `${ref.registry}/${ref.repository}:${ref.tag}`;
  } catch {
    return undefined;
  }
}

async function readDockerArchive(files: ArchiveFiles): Promise<ArchiveImage[]> {
  let entries: { Config?: string; RepoTags?: string[] | null; Layers?: string[] }[];
  try {
    entries = JSON.parse((await files.read('manifest.json')).toString('utf8'));
  } catch (err) {
    if (err instanceof MinidockError) throw err;
    throw bad(files.source, `manifest.json is not JSON (${(err as Error).message})`);
  }
  if (!Array.isArray(entries)) throw bad(files.source, 'manifest.json is not a list');
  const images: ArchiveImage[] = [];
  for (const e of entries) {
    if (typeof e?.Config !== 'string' || !Array.isArray(e.Layers)) {
      throw bad(files.source, 'a manifest.json entry lacks Config or Layers');
    }
    if (!e.Layers.every((l) => typeof l === 'string')) {
      throw bad(files.source, 'a manifest.json entry lists a layer that is not a file name');
    }
    const rawConfig = await files.read(e.Config);
    const config = parseImageConfig(rawConfig);
    const layerPaths = e.Layers.map((l) => files.resolve(String(l)));
    const layers: Descriptor[] = [];
    for (const p of layerPaths) layers.push(await describeLayerFile(p));
    // Docker's archive has no manifest: minidock writes the OCI manifest
    // that describes these very files.
    const manifest: ImageManifest = {
      schemaVersion: 2,
      mediaType: MediaType.ociManifest,
      config: { mediaType: MediaType.ociConfig, digest: digestOf(rawConfig), size: rawConfig.length },
      layers,
    };
    const rawManifest = Buffer.from(JSON.stringify(manifest));
    images.push({
      manifestDigest: digestOf(rawManifest),
      manifestMediaType: MediaType.ociManifest,
      rawManifest,
      manifest,
      rawConfig,
      config,
      layerPaths,
      tags: [...new Set((e.RepoTags ?? []).map((t) => tagKey(String(t))).filter((t): t is string => t !== undefined))],
    });
  }
  return images;
}

async function readOciLayout(files: ArchiveFiles, platform: Platform): Promise<ArchiveImage[]> {
  const index = parseManifest(await files.read('index.json'), undefined, 'index.json');
  if (index.kind !== 'index') throw bad(files.source, 'index.json is not an image index');
  // One image per manifest; its tags gathered from every entry naming it.
  const byDigest = new Map<Digest, { desc: Descriptor; tags: string[] }>();
  const visit = async (entries: Descriptor[], names: string[]) => {
    for (const d of entries) {
      const ann = d.annotations ?? {};
      const own = ann['io.containerd.image.name'] ?? ann['org.opencontainers.image.ref.name'];
      // A bare ref.name ("latest") is a tag with no repository: no name.
      const tag = own !== undefined && /[:/]/.test(own) ? tagKey(own) : undefined;
      const here = tag === undefined ? names : [...names, tag];
      if (isIndex(d.mediaType)) {
        const sub = parseManifest(await files.blob(parseDigest(d.digest), 'index'), d.mediaType, `index ${d.digest}`);
        if (sub.kind !== 'index') throw bad(files.source, `${d.digest} is not an index`);
        const pick = selectPlatform((sub.index as ImageIndex).manifests, platform);
        if (pick === undefined) throw bad(files.source, `index ${d.digest} has no image for this platform`);
        await visit([pick], here);
      } else if (isManifest(d.mediaType)) {
        const seen = byDigest.get(d.digest) ?? { desc: d, tags: [] };
        seen.tags.push(...here);
        byDigest.set(d.digest, seen);
      }
    }
  };
  await visit(index.index.manifests, []);
  if (byDigest.size === 0) throw bad(files.source, 'index.json names no image manifest');

  const images: ArchiveImage[] = [];
  for (const [digest, { desc, tags }] of byDigest) {
    const rawManifest = await files.blob(digest, 'manifest');
    const parsed = parseManifest(rawManifest, desc.mediaType, `manifest ${digest}`);
    if (parsed.kind !== 'manifest') throw bad(files.source, `${digest} is not an image manifest`);
    const rawConfig = await files.blob(parsed.manifest.config.digest, 'config');
    images.push({
      manifestDigest: digest,
      manifestMediaType: parsed.mediaType,
      rawManifest,
      manifest: parsed.manifest,
      rawConfig,
      config: parseImageConfig(rawConfig),
      layerPaths: parsed.manifest.layers.map((l) => files.resolve(blobName(l.digest))),
      tags: [...new Set(tags)],
    });
  }
  return images;
}

async function storeImage(store: Store, image: ArchiveImage, source: string, options: LoadOptions): Promise<LoadedImage> {
  const diffIDs = image.config.rootfs?.diff_ids as DiffID[];
  if (diffIDs.length !== image.manifest.layers.length) {
    throw bad(source, `an image has ${image.manifest.layers.length} layers but its config lists ${diffIDs.length} diff_ids`);
  }
  await writeBlobBytes(store, image.manifestDigest, image.rawManifest, 'manifest');
  await writeBlobBytes(store, image.manifest.config.digest, image.rawConfig, 'config');
  const paths = new Map(image.manifest.layers.map((l, i) => [l, image.layerPaths[i]!]));
  const blobs = {
    name: `archive ${source}`,
    open: async (layer: Descriptor, offset: number) => ({ body: createReadStream(paths.get(layer)!, { start: offset }), offset }),
  };
  await storeLayers(store, image.manifest.layers, diffIDs, blobs, { logger: options.logger });
  const { record } = await recordImage(store, {
    what: `load ${source}`,
    manifestDigest: image.manifestDigest,
    manifestMediaType: image.manifestMediaType,
    manifest: image.manifest,
    config: image.config,
    tags: image.tags,
  });
  return { record, tags: image.tags };
}

/**
 * Loads every image of an archive into the store and tags it. `input` is a
 * tar stream (named `source` in messages) or the path of an OCI layout
 * directory. Holds the content lock (shared) throughout; the extraction
 * lives under tmp/ and is removed at the end, whatever happens.
 */
export async function loadArchive(
  store: Store,
  input: Readable | string,
  source: string,
  options: LoadOptions = {},
): Promise<LoadedImage[]> {
  return withLock(
    store,
    contentLock,
    async () => {
      const tmp = store.tmpPath('load');
      try {
        let files: ArchiveFiles;
        if (typeof input === 'string') {
          files = new ArchiveFiles(input, new Map(), source);
        } else {
          await mkdir(tmp, { mode: 0o700 });
          files = new ArchiveFiles(tmp, await extractTar(input, tmp, source), source);
        }
        let images: ArchiveImage[];
        if (await files.exists('manifest.json')) images = await readDockerArchive(files);
        else if ((await files.exists('index.json')) && (await files.exists('oci-layout'))) {
          images = await readOciLayout(files, options.platform ?? hostPlatform());
        } else {
          throw bad(
            source,
            'neither manifest.json (Docker archive) nor index.json and oci-layout (OCI layout) found',
            'save the image with docker save, podman save or skopeo copy',
          );
        }
        if (images.length === 0) throw bad(source, 'the archive holds no image');
        const loaded: LoadedImage[] = [];
        for (const image of images) loaded.push(await storeImage(store, image, source, options));
        return loaded;
      } catch (err) {
        if (err instanceof MinidockError) throw err;
        throw new MinidockError('ERR_LOAD', `load ${source}: ${(err as Error).message}`, { cause: err });
      } finally {
        await rm(tmp, { recursive: true, force: true });
      }
    },
    { shared: true },
  );
}

