/**
 * Looking at an image in a registry without storing anything: its manifest
 * (or index and the platforms it offers), its config, and the entries of
 * one layer, streamed from the registry and listed as they pass.
 */
import type { Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { extract, type Header } from 'tar-stream';
import { DigestingStream, type Digest, type DiffID } from '../digest.js';
import { MinidockError, NotImplementedError } from '../errors.js';
import {
  formatPlatform,
  isAttestation,
  layerCompression,
  parseManifest,
  type Descriptor,
  type ImageConfig,
  type ImageManifest,
  type Platform,
} from '../image/index.js';
import type { Reference } from '../reference.js';
import type { RegistryClient } from '../registry/index.js';
import { decompressor, TarTailStream } from '../unpack/index.js';
import type { EntryFacts } from './walk.js';

/** What a registry says of an image, read whole (manifests and config only). */
export interface RemoteImage {
  /** The document the reference names: an index, or the image manifest itself. */
  top: { raw: Buffer; digest: Digest; mediaType: string };
  /** For an index: its entries with their platforms (attestations marked). */
  platforms?: { platform: string; digest: Digest; mediaType: string; size: number; attestation: boolean }[];
  /** The image manifest for the platform asked for: exact bytes, digest, media type, parsed. */
  manifest: { raw: Buffer; digest: Digest; mediaType: string; manifest: ImageManifest };
  rawConfig: Buffer;
  config: ImageConfig;
}

/**
 * Fetches ref's manifest (following an index to `platform`) and config,
 * each verified against its digest. Stores nothing.
 */
export async function fetchRemoteImage(client: RegistryClient, ref: Reference, platform: Platform): Promise<RemoteImage> {
  const resolved = await client.resolve(ref, platform);
  const manifest: RemoteImage['manifest'] = {
    raw: resolved.rawManifest,
    mediaType: resolved.mediaType,
    digest: resolved.manifestDigest,
    manifest: resolved.manifest,
  };
  let top: RemoteImage['top'] = manifest;
  let platforms: RemoteImage['platforms'];
  if (resolved.rawIndex !== undefined && resolved.indexDigest !== undefined) {
    // resolve() verified these bytes against the index's digest already.
    const index = parseManifest(resolved.rawIndex, undefined, `index ${resolved.indexDigest}`);
    top = { raw: resolved.rawIndex, digest: resolved.indexDigest, mediaType: index.mediaType };
    if (index.kind === 'index') {
      platforms = index.index.manifests.map((d) => ({
        platform: d.platform === undefined ? 'unknown' : formatPlatform(d.platform),
        digest: d.digest,
        mediaType: d.mediaType,
        size: d.size,
        attestation: isAttestation(d),
      }));
    }
  }
  const rawConfig = await client.fetchSmallBlob(ref, resolved.manifest.config);
  let config: ImageConfig;
  try {
    config = JSON.parse(rawConfig.toString('utf8')) as ImageConfig;
  } catch (err) {
    throw new MinidockError('ERR_BAD_IMAGE', `parse config ${resolved.manifest.config.digest}: ${(err as Error).message}`);
  }
  return { top, platforms, manifest, rawConfig, config };
}

/** One entry of a layer tar, as the tar states it. */
export interface TarListing extends EntryFacts {
  /** "A" for what the layer writes (without the layers below, added and changed cannot be told apart), "D" for a deletion. */
  op: 'A' | 'D';
  /** For D: a whiteout of this path, or an opaque marker (everything the lower layers hold below this directory). */
  deletedBy?: 'whiteout' | 'opaque';
}

/**
 * Streams the layer `layer` of ref from the registry and calls `onEntry`
 * for each tar entry as it passes, OCI whiteouts (`.wh.NAME`) as deletions
 * of NAME and opaque markers (`.wh..wh..opq`) as deletions of what lies
 * below their directory. Nothing is written anywhere. Once the blob has
 * ended, its digest and size are checked against the descriptor and its
 * diffID against `diffID`: entries already reported come from an
 * unverified stream until then, and a mismatch throws DigestMismatchError.
 */
export async function listRemoteLayer(
  client: RegistryClient,
  ref: Reference,
  layer: Descriptor,
  diffID: DiffID | undefined,
  onEntry: (e: TarListing) => void,
): Promise<{ entries: number }> {
  const compression = layerCompression(layer.mediaType);
  if (compression === undefined) throw new NotImplementedError(`layer media type ${JSON.stringify(layer.mediaType)}`);
  const unzip = decompressor(compression);
  const { body } = await client.openBlob(ref, layer);
  const compressed = new DigestingStream({ limit: { bytes: layer.size, what: `layer ${layer.digest}` } });
  const uncompressed = new DigestingStream();
  const tail = new TarTailStream();
  const ex = extract();
  const flow = pipeline(body, compressed, unzip, uncompressed, tail, ex as unknown as Writable);
  const parse = (async () => {
    let n = 0;
    for await (const entry of ex) {
      const listing = describeTarEntry(entry.header as TarHeader);
      if (listing !== undefined) {
        onEntry(listing);
        n++;
      }
      for await (const _ of entry) {
        // Content is not kept; reading it moves the tar on.
      }
    }
    return n;
  })();
  let entries: number;
  try {
    [, entries] = await Promise.all([flow, parse]);
  } catch (err) {
    body.destroy();
    ex.destroy();
    await Promise.allSettled([flow, parse]);
    if (err instanceof MinidockError) throw err;
    throw new MinidockError('ERR_BAD_LAYER', `read layer ${layer.digest}: ${(err as Error).message}`, { cause: err });
  }
  compressed.verify(`layer ${layer.digest}`, layer.digest, layer.size);
  if (diffID !== undefined) uncompressed.verify(`diffID of layer ${layer.digest}`, diffID);
  return { entries };
}

type TarHeader = Omit<Header, 'type'> & { type: Header['type'] | null };

function describeTarEntry(h: TarHeader): TarListing | undefined {
  const parts = h.name.split('/').filter((p) => p !== '' && p !== '.');
  if (parts.length === 0) return undefined;
  const base = parts[parts.length - 1]!;
  const mtime = h.mtime instanceof Date ? h.mtime.getTime() : 0;
  const common = { mode: (h.mode ?? 0) & 0o7777, uid: h.uid ?? 0, gid: h.gid ?? 0, mtime };
  if (base === '.wh..wh..opq') {
    return { op: 'D', path: parts.slice(0, -1).join('/'), kind: 'dir', size: 0, deletedBy: 'opaque', ...common };
  }
  if (base.startsWith('.wh.')) {
    return { op: 'D', path: [...parts.slice(0, -1), base.slice(4)].join('/'), kind: 'whiteout', size: 0, deletedBy: 'whiteout', ...common };
  }
  const path = parts.join('/');
  switch (h.type) {
    case 'directory':
      return { op: 'A', path, kind: 'dir', size: 0, ...common };
    case 'symlink':
      return { op: 'A', path, kind: 'symlink', size: 0, target: h.linkname ?? '', ...common };
    case 'link':
      return { op: 'A', path, kind: 'file', size: 0, linkTo: (h.linkname ?? '').replace(/^\/+|^\.\//g, ''), ...common };
    case 'character-device':
    case 'block-device':
      return {
        op: 'A', path, kind: h.type === 'character-device' ? 'char' : 'block', size: 0,
        device: { major: h.devmajor ?? 0, minor: h.devminor ?? 0 }, ...common,
      };
    case 'fifo':
      return { op: 'A', path, kind: 'fifo', size: 0, ...common };
    default:
      return { op: 'A', path, kind: 'file', size: h.size ?? 0, ...common };
  }
}
