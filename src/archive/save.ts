/**
 * Writing images out of the store for offline exchange.
 *
 * A docker-archive is written as Docker 25 and later write it: one tar that
 * is at once an OCI image layout (oci-layout, index.json, blobs/sha256/…)
 * and Docker's archive (manifest.json naming the config and layer files
 * inside blobs/). Blobs are copied as stored: the image keeps its manifest
 * digest, and layers stay compressed (Docker, skopeo and podman all read
 * compressed layer files named by manifest.json). An oci-archive is the
 * same tar without manifest.json; oci-dir is the layout as a directory.
 */
import { createReadStream } from 'node:fs';
import { mkdir, rename, rm, writeFile, copyFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { hexOf, type Digest } from '../digest.js';
import { MinidockError } from '../errors.js';
import { familiarName, parseReference } from '../reference.js';
import { blobPath, imageBlobs, statBlob, type ImageRecord, type Store } from '../store/index.js';

export type ArchiveFormat = 'docker-archive' | 'oci-archive' | 'oci-dir';

export const archiveFormats: ArchiveFormat[] = ['docker-archive', 'oci-archive', 'oci-dir'];

/** One image to save, with the tags ("registry/repository:tag") to name it by. */
export interface SaveItem {
  record: ImageRecord;
  tags: string[];
}

/** What a saved archive holds, apart from its blobs. */
interface ArchiveFiles {
  blobs: Digest[];
  index: string;
  manifestJSON: string;
}

function describe(items: SaveItem[]): ArchiveFiles {
  const blobs = new Set<Digest>();
  const manifests: object[] = [];
  const dockerEntries: object[] = [];
  for (const { record, tags } of items) {
    // The index names the platform manifest; an index it was picked from
    // is not saved (its other platforms are not in the store).
    for (const d of imageBlobs(record)) if (d !== record.indexDigest) blobs.add(d);
    const manifest = {
      mediaType: record.manifestMediaType,
      digest: record.manifestDigest,
      size: 0,
      platform: record.platform,
    };
    const names = tags.map((t) => {
      const ref = parseReference(t);
      return { full: t, familiar: `${familiarName(ref)}:${ref.tag}`, tag: ref.tag! };
    });
    if (names.length === 0) manifests.push(manifest);
    for (const n of names) {
      manifests.push({
        ...manifest,
        annotations: { 'io.containerd.image.name': n.full, 'org.opencontainers.image.ref.name': n.tag },
      });
    }
    dockerEntries.push({
      Config: `blobs/sha256/${hexOf(record.config.digest)}`,
      RepoTags: names.map((n) => n.familiar),
      Layers: record.layers.map((l) => `blobs/sha256/${hexOf(l.digest)}`),
    });
  }
  return {
    blobs: [...blobs],
    index: JSON.stringify({ schemaVersion: 2, mediaType: 'application/vnd.oci.image.index.v1+json', manifests }),
    manifestJSON: JSON.stringify(dockerEntries),
  };
}

const ociLayout = JSON.stringify({ imageLayoutVersion: '1.0.0' });

/** Fills in the manifests' sizes and checks every blob is stored. */
async function sizeBlobs(store: Store, files: ArchiveFiles, items: SaveItem[]): Promise<Map<Digest, number>> {
  const sizes = new Map<Digest, number>();
  for (const d of files.blobs) {
    const size = await statBlob(store, d);
    if (size === undefined) {
      const owner = items.find((i) => imageBlobs(i.record).includes(d))!;
      throw new MinidockError('ERR_NOT_FOUND', `save image ${owner.record.id}: blob ${d} is missing from the store`, {
        hint: 'pull the image again',
      });
    }
    sizes.set(d, size);
  }
  const index = JSON.parse(files.index) as { manifests: { digest: Digest; size: number }[] };
  for (const m of index.manifests) m.size = sizes.get(m.digest)!;
  files.index = JSON.stringify(index);
  return sizes;
}

/**
 * Writes items as a docker-archive or oci-archive tar to out. Hold the
 * content lock (shared) while calling, so that no blob is removed midway.
 * Does not end out on failure; the caller discards what was written.
 */
export async function writeArchive(store: Store, items: SaveItem[], format: 'docker-archive' | 'oci-archive', out: Writable): Promise<void> {
  const files = describe(items);
  const sizes = await sizeBlobs(store, files, items);
  const { pack: makePack } = await import('tar-stream');
  const pack = makePack();
  const done = pipeline(pack, out);
  const header = { mode: 0o644, mtime: new Date(0), uid: 0, gid: 0 };
  const addText = (name: string, text: string) =>
    new Promise<void>((res, rej) => pack.entry({ ...header, name }, text, (err) => (err ? rej(err) : res())));

  await addText('oci-layout', ociLayout);
  for (const dir of ['blobs/', 'blobs/sha256/']) {
    await new Promise<void>((res, rej) => pack.entry({ ...header, name: dir, type: 'directory', mode: 0o755 }, (err) => (err ? rej(err) : res())));
  }
  for (const d of files.blobs) {
    const entry = pack.entry({ ...header, name: `blobs/sha256/${hexOf(d)}`, size: sizes.get(d)! });
    await pipeline(createReadStream(blobPath(store, d)), entry);
  }
  await addText('index.json', files.index);
  if (format === 'docker-archive') await addText('manifest.json', files.manifestJSON);
  pack.finalize();
  await done;
}

/**
 * Writes items as an OCI image layout in directory dir, which must not
 * exist: it is built beside dir and renamed into place.
 */
export async function writeLayoutDir(store: Store, items: SaveItem[], dir: string): Promise<void> {
  const files = describe(items);
  await sizeBlobs(store, files, items);
  const tmp = `${dir}.tmp-${process.pid}`;
  try {
    await mkdir(join(tmp, 'blobs', 'sha256'), { recursive: true });
    for (const d of files.blobs) await copyFile(blobPath(store, d), join(tmp, 'blobs', 'sha256', hexOf(d)));
    await writeFile(join(tmp, 'oci-layout'), ociLayout);
    await writeFile(join(tmp, 'index.json'), files.index);
    await rename(tmp, dir);
  } catch (err) {
    await rm(tmp, { recursive: true, force: true });
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'EEXIST' || code === 'ENOTEMPTY') {
      throw new MinidockError('ERR_EXISTS', `save to ${JSON.stringify(dir)}: a directory of that name exists`);
    }
    throw err;
  }
}
