/**
 * Reading OCI image layouts and layer tars in tests, independently of
 * minidock's own store and unpack code.
 */
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { gunzipSync, gzipSync } from 'node:zlib';
import * as tar from 'tar-stream';
import { digestOf, hexOf, type Digest } from '../../src/digest.js';
import { MediaType, type Descriptor, type ImageIndex, type ImageManifest } from '../../src/image/index.js';

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

/** One layer for writeLayout: an uncompressed tar, or a blob already in a layout. */
export type LayoutLayer = Buffer | { from: string; descriptor: Descriptor; diffID: Digest };

/**
 * Writes an OCI image layout at dir holding one image tagged tag: the
 * layers (tars are gzipped), a linux/amd64 config with config (Env, Cmd,
 * ...) and the manifest. Returns the layers' diffIDs, bottom first.
 */
export async function writeLayout(
  dir: string,
  layers: LayoutLayer[],
  config: Record<string, unknown> = {},
  tag = 'latest',
): Promise<Digest[]> {
  const blobs = join(dir, 'blobs', 'sha256');
  await mkdir(blobs, { recursive: true });
  const put = async (bytes: Buffer): Promise<Digest> => {
    const digest = digestOf(bytes);
    await writeFile(join(blobs, hexOf(digest)), bytes);
    return digest;
  };

  const descriptors: Descriptor[] = [];
  const diffIDs: Digest[] = [];
  for (const layer of layers) {
    if (Buffer.isBuffer(layer)) {
      const gz = gzipSync(layer);
      descriptors.push({ mediaType: MediaType.ociLayerGzip, digest: await put(gz), size: gz.length });
      diffIDs.push(digestOf(layer));
    } else {
      await put(await readLayoutBlob(layer.from, layer.descriptor.digest));
      descriptors.push(layer.descriptor);
      diffIDs.push(layer.diffID);
    }
  }

  const configBytes = Buffer.from(
    JSON.stringify({ architecture: 'amd64', os: 'linux', config, rootfs: { type: 'layers', diff_ids: diffIDs } }),
  );
  const manifest = Buffer.from(
    JSON.stringify({
      schemaVersion: 2,
      mediaType: MediaType.ociManifest,
      config: { mediaType: MediaType.ociConfig, digest: await put(configBytes), size: configBytes.length },
      layers: descriptors,
    }),
  );
  const index = {
    schemaVersion: 2,
    mediaType: MediaType.ociIndex,
    manifests: [
      {
        mediaType: MediaType.ociManifest,
        digest: await put(manifest),
        size: manifest.length,
        annotations: { 'org.opencontainers.image.ref.name': tag },
      },
    ],
  };
  await writeFile(join(dir, 'oci-layout'), JSON.stringify({ imageLayoutVersion: '1.0.0' }));
  await writeFile(join(dir, 'index.json'), JSON.stringify(index));
  return diffIDs;
}

/** The busybox fixture's single layer, for writeLayout to build on. */
export async function busyboxLayer(busyboxLayout: string): Promise<LayoutLayer> {
  const manifest = await readLayoutJSON<ImageManifest>(busyboxLayout, (await layoutEntry(busyboxLayout)).digest);
  const config = await readLayoutJSON<{ rootfs: { diff_ids: Digest[] } }>(busyboxLayout, manifest.config.digest);
  return { from: busyboxLayout, descriptor: manifest.layers[0]!, diffID: config.rootfs.diff_ids[0]! };
}
