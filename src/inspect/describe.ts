/**
 * What the store knows of an image, gathered for `inspect` and `history`:
 * the manifest exactly as stored, the config, the layers with both their
 * names and sizes, the history entries matched to the layers they made.
 */
import { readFile } from 'node:fs/promises';
import type { Digest, DiffID } from '../digest.js';
import { MinidockError } from '../errors.js';
import type { ImageConfig } from '../image/index.js';
import { blobPath, readLayerRecord, readRepositories, type ImageRecord, type Store } from '../store/index.js';

/** One layer of a stored image. */
export interface LayerInfo {
  /** 1-based, bottom layer first. */
  index: number;
  digest: Digest;
  diffID: DiffID;
  mediaType: string;
  /** Bytes of the (compressed) blob. */
  size: number;
  /** Bytes of regular-file content once unpacked (from layer.json). */
  unpackedSize?: number;
  /** Tar entries of the layer (from layer.json). */
  entries?: number;
}

/** An image as `inspect` shows it. */
export interface ImageInfo {
  record: ImageRecord;
  repoTags: string[];
  /** The manifest's bytes, exactly as stored (its digest is record.manifestDigest). */
  rawManifest: Buffer;
  rawConfig: Buffer;
  config: ImageConfig;
  layers: LayerInfo[];
}

/** Reads what the store holds of rec. Throws a MinidockError naming a missing blob. */
export async function readImageInfo(store: Store, rec: ImageRecord): Promise<ImageInfo> {
  const read = async (d: Digest, what: string) =>
    readFile(blobPath(store, d)).catch((err: Error) => {
      throw new MinidockError('ERR_STORE_CORRUPT', `read ${what} ${d} of image ${rec.id}: ${err.message}`, {
        hint: 'pull the image again',
      });
    });
  const [rawManifest, rawConfig, repos] = await Promise.all([
    read(rec.manifestDigest, 'manifest'),
    read(rec.config.digest, 'config'),
    readRepositories(store),
  ]);
  const layers = await Promise.all(
    rec.layers.map(async (d, i): Promise<LayerInfo> => {
      const diffID = rec.diffIDs[i]!;
      const lr = await readLayerRecord(store, diffID);
      return { index: i + 1, digest: d.digest, diffID, mediaType: d.mediaType, size: d.size, unpackedSize: lr?.size, entries: lr?.entries };
    }),
  );
  return {
    record: rec,
    repoTags: Object.keys(repos).filter((k) => repos[k] === rec.id).sort(),
    rawManifest,
    rawConfig,
    config: JSON.parse(rawConfig.toString('utf8')) as ImageConfig,
    layers,
  };
}

/** One history entry with the layer it made. */
export interface HistoryRow {
  created?: string;
  createdBy: string;
  comment?: string;
  author?: string;
  emptyLayer: boolean;
  /** The layer it made (1-based), absent for an empty-layer entry. */
  layer?: number;
  diffID?: DiffID;
  /** Unpacked file bytes of that layer; 0 for an empty-layer entry. */
  size: number;
}

/**
 * Matches the config's history to the layers, oldest first: each entry not
 * marked empty_layer made the next layer. Layers the history does not
 * account for (an image without history) get an entry each, as Docker
 * shows them.
 */
export function historyRows(info: ImageInfo): HistoryRow[] {
  const rows: HistoryRow[] = [];
  let next = 0;
  for (const h of info.config.history ?? []) {
    const empty = h.empty_layer === true || next >= info.layers.length;
    const layer = empty ? undefined : info.layers[next++];
    rows.push({
      created: h.created,
      createdBy: h.created_by ?? '',
      comment: h.comment,
      author: h.author,
      emptyLayer: empty,
      layer: layer?.index,
      diffID: layer?.diffID,
      size: layer?.unpackedSize ?? 0,
    });
  }
  for (; next < info.layers.length; next++) {
    const layer = info.layers[next]!;
    rows.push({ createdBy: '', emptyLayer: false, layer: layer.index, diffID: layer.diffID, size: layer.unpackedSize ?? 0 });
  }
  return rows;
}

/**
 * Picks a layer of info by what a user typed: a 1-based index, or a layer
 * digest or diffID (with or without "sha256:", 12 hex digits or more).
 * Throws a MinidockError when nothing or several match.
 */
export function pickLayer(info: { layers: LayerInfo[] }, text: string): LayerInfo {
  if (/^\d+$/.test(text)) {
    const n = Number(text);
    const layer = info.layers[n - 1];
    if (layer === undefined || n < 1) {
      throw new MinidockError('ERR_BAD_ARGUMENT', `layer ${text}: the image has layers 1 to ${info.layers.length}`, {
        hint: 'layers are numbered from 1, the bottom layer',
      });
    }
    return layer;
  }
  const hex = /^(?:sha256:)?([0-9a-f]{12,64})$/.exec(text)?.[1];
  if (hex === undefined) {
    throw new MinidockError('ERR_BAD_ARGUMENT', `layer ${JSON.stringify(text)}: want a number or a digest`, {
      hint: 'give a layer number (1 is the bottom layer), or a layer digest or diffID',
    });
  }
  const matches = info.layers.filter((l) => l.digest.slice(7).startsWith(hex) || l.diffID.slice(7).startsWith(hex));
  if (matches.length === 0) throw new MinidockError('ERR_NOT_FOUND', `no layer ${text} in the image`);
  if (new Set(matches.map((m) => m.index)).size > 1) {
    throw new MinidockError('ERR_AMBIGUOUS', `layer ${text} matches layers ${matches.map((m) => m.index).join(', ')}`);
  }
  return matches[0]!;
}
