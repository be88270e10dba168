/**
 * Reading OCI image layouts and layer tars in tests, independently of
 * minidock's own store and unpack code.
 */
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { gunzipSync } from 'node:zlib';
import * as tar from 'tar-stream';
import { hexOf, type Digest } from '../../src/digest.js';
import type { Descriptor, ImageIndex } from '../../src/image/index.js';

/** Returns the bytes of the blob named digest in layoutDir. */
export function readLayoutBlob(layoutDir: string, digest: Digest): Promise<Buffer> {
  return readFile(join(layoutDir, 'blobs', 'sha256', hexOf(digest)));
}

/** Parses a blob of layoutDir as JSON. */
export async function readLayoutJSON<T = unknown>(layoutDir: string, digest: Digest): Promise<T> {
  return JSON.parse((await readLayoutBlob(layoutDir, digest)).toString('utf8')) as T;
}

/** Returns the index.json entry tagged tag (org.opencontainers.image.ref.name). */
export async function layoutEntry(layoutDir: string, tag = 'latest'): Promise<Descriptor> {
  const index = JSON.parse(await readFile(join(layoutDir, 'index.json'), 'utf8')) as ImageIndex;
  const refName = 'org.opencontainers.image.ref.name';
  const hit = index.manifests.find((d) => d.annotations?.[refName] === tag);
  if (hit === undefined) throw new Error(`layout ${layoutDir} has no tag ${tag}`);
  return hit;
}

/** One tar entry: its header and, for regular files, its content. */
export interface TarListing {
  header: tar.Header;
  data: Buffer;
}

/** Lists a layer tar, gunzipping it first when it is gzip. */
export async function listLayer(bytes: Buffer): Promise<TarListing[]> {
  const plain = bytes[0] === 0x1f && bytes[1] === 0x8b ? gunzipSync(bytes) : bytes;
  const extract = tar.extract();
  const entries: TarListing[] = [];
  const done = (async () => {
    for await (const entry of extract) {
      const chunks: Buffer[] = [];
      for await (const c of entry) chunks.push(c as Buffer);
      entries.push({ header: entry.header, data: Buffer.concat(chunks) });
    }
  })();
  extract.end(plain);
  await done;
  return entries;
}
