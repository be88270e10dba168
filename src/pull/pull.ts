/**
 * Pull: resolve a reference, then fetch the config and every layer,
 * verifying each blob while it streams and unpacking it in the same pass.
 *
 * Each layer is downloaded once and read once: the network body is hashed
 * (digest), written to a temp blob file and, in the same stream, decompressed,
 * hashed again (diffID) and applied into a temp layer directory. Only when
 * both hashes match the manifest and the config does either reach its final
 * name. Layers run concurrently, each in its own directory.
 */
import { createReadStream } from 'node:fs';
import { mkdir, open, rm, stat, unlink } from 'node:fs/promises';
import { join } from 'node:path';
import { PassThrough, Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { setTimeout as sleep } from 'node:timers/promises';
import { algorithmOf, DigestingStream, hexOf, type Digest, type DiffID } from '../digest.js';
import { DigestMismatchError, MinidockError, NotImplementedError } from '../errors.js';
import {
  formatPlatform,
  hostPlatform,
  layerCompression,
  parseImageConfig,
  type Descriptor,
  type ImageConfig,
  type ImageManifest,
  type Platform,
} from '../image/index.js';
import { silentLogger, type Logger } from '../log.js';
import { formatReference, type Reference } from '../reference.js';
import {
  connectionError,
  formatDelay,
  isTemporaryNetworkError,
  RegistryClient,
  type OpenedBlob,
  type RegistryClientOptions,
} from '../registry/index.js';
import {
  blobPath,
  commitBlobFile,
  commitLayer,
  contentLock,
  hasLayer,
  layerTreeDigest,
  metadataLock,
  readLayerRecord,
  writeLayerRecord,
  readRepositories,
  readImageRecord,
  statBlob,
  sweepTmp,
  withLock,
  writeBlobBytes,
  writeImageRecord,
  writeRepositories,
  type ImageRecord,
  type LayerRecord,
  type Store,
} from '../store/index.js';
import { applyLayer, checkDecompressor, decompressor, TarTailStream } from '../unpack/index.js';
import type { PullPhase, ProgressSink } from './progress.js';

export interface PullOptions {
  platform?: Platform;
  logger?: Logger;
  progress?: ProgressSink;
  signal?: AbortSignal;
  registry?: RegistryClientOptions;
  /** Layers fetched at once. */
  concurrency?: number;
}

export interface PullResult {
  record: ImageRecord;
  /** The digest the reference resolved to: the index's when there was one, else the manifest's. */
  digest: Digest;
  /** True when the store already held the image under this reference. */
  upToDate: boolean;
}

/**
 * Pulls ref into the store and tags it. Idempotent: blobs and layers already
 * present are not fetched again. Throws MinidockError subclasses; on failure
 * nothing partial is left under a final name.
 */
export async function pullImage(store: Store, ref: Reference, options: PullOptions = {}): Promise<PullResult> {
  const logger = options.logger ?? silentLogger;
  const platform = options.platform ?? hostPlatform();
  const client = new RegistryClient({ logger, ...options.registry });
  await sweepTmp(store);
  return withLock(store, contentLock, () => pullLocked(store, client, ref, platform, logger, options), { shared: true });
}

async function pullLocked(
  store: Store,
  client: RegistryClient,
  ref: Reference,
  platform: Platform,
  logger: Logger,
  options: PullOptions,
): Promise<PullResult> {
  try {
    const resolved = await client.resolve(ref, platform, { signal: options.signal });
    logger.info(`resolved ${formatReference(ref)} to ${resolved.indexDigest ?? resolved.manifestDigest}`);
    const { manifest } = resolved;

    // Refuse what cannot be unpacked before downloading anything.
    for (const layer of manifest.layers) {
      const compression = layerCompression(layer.mediaType);
      if (compression === undefined) throw new NotImplementedError(`layer media type ${JSON.stringify(layer.mediaType)}`);
      checkDecompressor(compression);
    }

    await writeBlobBytes(store, resolved.manifestDigest, resolved.rawManifest, 'manifest');
    if (resolved.indexDigest && resolved.rawIndex) {
      await writeBlobBytes(store, resolved.indexDigest, resolved.rawIndex, 'index');
    }

    const config = await fetchConfig(store, client, ref, manifest.config, options);
    const diffIDs = config.rootfs.diff_ids;
    if (diffIDs.length !== manifest.layers.length) {
      throw new MinidockError(
        'ERR_BAD_IMAGE',
        `pull ${formatReference(ref)}: manifest has ${manifest.layers.length} layers but config lists ${diffIDs.length} diff_ids`,
      );
    }
    if (config.os !== platform.os || config.architecture !== platform.architecture) {
      const msg = `image ${formatReference(ref)} is for ${formatPlatform(config)}, not the ${options.platform ? 'specified' : "host's"} platform ${formatPlatform(platform)}`;
      // Asked for by name, a platform is a requirement; by default, as in
      // Docker, an image for another platform is pulled with a warning.
      if (options.platform) throw new MinidockError('ERR_NO_PLATFORM', `pull: ${msg}`);
      logger.warn(msg);
    }

    const fetched = await storeLayers(
      store,
      manifest.layers,
      diffIDs,
      { name: `registry ${ref.registry}`, open: (layer, offset) => client.openBlob(ref, layer, { offset, signal: options.signal }) },
      options,
    );
    const digest = resolved.indexDigest ?? resolved.manifestDigest;
    const { record, tagged } = await recordImage(store, {
      what: `pull ${formatReference(ref)}`,
      manifestDigest: resolved.manifestDigest,
      manifestMediaType: resolved.mediaType,
      indexDigest: resolved.indexDigest,
      manifest,
      config,
      repoDigest: `${ref.registry}/${ref.repository}@${digest}`,
      tags: ref.tag === undefined ? [] : [`${ref.registry}/${ref.repository}:${ref.tag}`],
    });
    return { record, digest, upToDate: fetched === 0 && tagged };
  } catch (err) {
    if (err instanceof MinidockError) throw err;
    // Errors from below (sockets, streams) become one line naming the pull.
    throw new MinidockError('ERR_PULL', `pull ${formatReference(ref)}: ${(err as Error).message}`, { cause: err });
  } finally {
    await client.close();
  }
}

async function fetchConfig(
  store: Store,
  client: RegistryClient,
  ref: Reference,
  d: Descriptor,
  options: PullOptions,
): Promise<ImageConfig> {
  const { readFile } = await import('node:fs/promises');
  if ((await statBlob(store, d.digest)) === d.size) {
    return parseImageConfig(await readFile(blobPath(store, d.digest)));
  }
  const raw = await client.fetchSmallBlob(ref, d, { signal: options.signal });
  const config = parseImageConfig(raw);
  await writeBlobBytes(store, d.digest, raw, 'config');
  return config;
}

/** Runs jobs with at most `limit` in flight; the first failure rejects (the rest finish first). */
async function runLimited(jobs: (() => Promise<void>)[], limit: number): Promise<void> {
  let next = 0;
  let failure: unknown;
  const worker = async () => {
    while (next < jobs.length && failure === undefined) {
      const job = jobs[next++]!;
      try {
        await job();
      } catch (err) {
        failure ??= err;
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, jobs.length) }, worker));
  if (failure !== undefined) throw failure;
}

/** What recordImage needs to know of an image whose blobs and layers are stored. */
export interface NewImage {
  /** Names the operation in errors ("pull REF", "load FILE"). */
  what: string;
  manifestDigest: Digest;
  manifestMediaType: string;
  indexDigest?: Digest;
  manifest: ImageManifest;
  config: ImageConfig;
  /** "registry/repository@digest", when the image came from a repository. */
  repoDigest?: string;
  /** "registry/repository:tag" keys to point at the image. */
  tags: string[];
}

/**
 * Writes the record of an image whose layers are all stored, under the
 * metadata lock, and points its tags at it. Returns the record, and whether
 * the store held it under every one of those tags already. Throws when a
 * layer is missing. Call with the content lock held (shared).
 */
export async function recordImage(store: Store, image: NewImage): Promise<{ record: ImageRecord; tagged: boolean }> {
  const { manifest, config } = image;
  const diffIDs = config.rootfs.diff_ids;
  const id = manifest.config.digest;
  return withLock(store, metadataLock, async () => {
    // The content lock keeps rmi and prune out while a pull or load runs;
    // this catches a layer removed by other means (by hand, or a bug).
    for (const d of diffIDs) {
      if (!(await hasLayer(store, d))) {
        throw new MinidockError('ERR_CONFLICT', `${image.what}: layer ${d} was removed meanwhile`, {
          hint: 'run the command again',
        });
      }
    }
    const old = await readImageRecord(store, id);
    const repos = await readRepositories(store);
    const tagged = old !== undefined && image.tags.every((t) => repos[t] === id);
    const record: ImageRecord = {
      id,
      manifestDigest: image.manifestDigest,
      manifestMediaType: image.manifestMediaType,
      indexDigest: image.indexDigest,
      config: manifest.config,
      layers: manifest.layers,
      diffIDs,
      platform: { os: config.os, architecture: config.architecture, ...(config.variant ? { variant: config.variant } : {}) },
      repoDigests: [...new Set([...(old?.repoDigests ?? []), ...(image.repoDigest ? [image.repoDigest] : [])])],
      created: config.created,
      pulled: new Date().toISOString(),
    };
    await writeImageRecord(store, record);
    if (image.tags.length > 0) {
      for (const t of image.tags) repos[t] = id;
      await writeRepositories(store, repos);
    }
    return { record, tagged };
  });
}

/**
 * Makes sure every layer of an image (blob and unpacked directory) is in the
 * store, reading a missing one from source, at most `concurrency` at
 * once. Returns how many layers had to be read.
 */
export async function storeLayers(
  store: Store,
  layers: Descriptor[],
  diffIDs: DiffID[],
  source: BlobSource,
  options: PullOptions,
): Promise<number> {
  let fetched = 0;
  const jobs = layers.map((layer, i) => async () => {
    if (await ensureLayer({ store, source, layer, diffID: diffIDs[i]!, options })) fetched++;
  });
  await runLimited(jobs, options.concurrency ?? 4);
  return fetched;
}

/**
 * Where layer blobs come from: a registry, or an archive being loaded.
 * open(layer, offset) returns the blob's bytes from offset on (or from 0,
 * said by the returned offset, when the source cannot seek).
 */
export interface BlobSource {
  /** Names the source in messages ("registry 127.0.0.1:5000"). */
  name: string;
  open(layer: Descriptor, offset: number): Promise<OpenedBlob>;
}

/**
 * Makes sure the layer's blob and unpacked directory are both in the store.
 * Returns true when anything had to be fetched or unpacked.
 *
 * The download goes to tmp/partial-<algorithm>-<hex>, which outlives a
 * failed or killed pull: the next pull (this one after a dropped
 * connection, or the next process) reads what it holds and asks the
 * registry only for the rest. A partial file is never trusted: its bytes
 * pass through the same digest check as the network's, and a resumed
 * download that does not verify is thrown away and fetched once more from
 * its first byte.
 */
async function ensureLayer(job: LayerJob): Promise<boolean> {
  const { store, layer, diffID, options } = job;
  const progress = options.progress ?? (() => {});
  const event = (phase: PullPhase, complete: number) =>
    progress({ digest: layer.digest, phase, total: layer.size, complete });
  event('waiting', 0);

  // The layer's lock keeps two pulls from unpacking it at once; the blob's
  // keeps two jobs from appending to one partial download, should two
  // configs (one of them lying) name different diffIDs for the same blob.
  const locked = (fn: () => Promise<boolean>) =>
    withLock(store, `layer-${hexOf(diffID)}`, () => withLock(store, `blob-${hexOf(layer.digest)}`, fn));
  return locked(async () => {
    const haveBlob = (await statBlob(store, layer.digest)) === layer.size;
    const record = await readLayerRecord(store, diffID);
    // A stored layer counts for this blob only once this blob was seen to
    // decompress to it: a config cannot borrow another image's layer by
    // naming its diffID.
    const linked = record?.blobs?.includes(layer.digest) ?? false;
    if (haveBlob && linked) {
      event('exists', layer.size);
      return false;
    }

    const partial = partialPath(store, layer.digest);
    try {
      await fetchLayer(job, { haveBlob, record, linked, partial, event });
    } catch (err) {
      const resumed = !haveBlob && err instanceof DigestMismatchError && (err as ResumedMismatch).resumedFrom > 0;
      if (!resumed) throw err;
      // What an earlier pull left does not belong to this blob (a power
      // loss can leave garbage at a file's end): start from nothing.
      options.logger?.warn(`layer ${layer.digest}: the partial download does not verify; downloading it again`);
      await unlink(partial).catch(() => {});
      await fetchLayer(job, { haveBlob, record, linked, partial, event });
    }
    return true;
  });
}

type ResumedMismatch = DigestMismatchError & { resumedFrom: number };

/** Where the download of blob d collects, across pulls. */
function partialPath(store: Store, d: Digest): string {
  return store.path('tmp', `partial-${algorithmOf(d)}-${hexOf(d)}`);
}

/** One layer of one pull. */
interface LayerJob {
  store: Store;
  source: BlobSource;
  layer: Descriptor;
  diffID: DiffID;
  options: PullOptions;
}

/** What ensureLayer found in the store, and how it reports. */
interface LayerState {
  haveBlob: boolean;
  record: LayerRecord | undefined;
  linked: boolean;
  partial: string;
  event: (phase: PullPhase, complete: number) => void;
}

/** One attempt of ensureLayer's work, under its lock. */
async function fetchLayer(job: LayerJob, st: LayerState): Promise<void> {
  const { store, source, layer, diffID, options } = job;
  const { haveBlob, record, linked, partial, event } = st;
  const compression = layerCompression(layer.mediaType)!;
  const tmpLayer = store.tmpPath(`layer-${hexOf(diffID).slice(0, 12)}`);
  // The partial file is kept for the next pull only when the network (or
  // the user) stopped this one; content that failed a check is removed.
  let keepPartial = false;
  let resumedFrom = 0;
  try {
    let body: Readable;
    if (haveBlob) {
      body = createReadStream(blobPath(store, layer.digest));
    } else {
      const download = resumableDownload(source, layer, partial, options);
      resumedFrom = download.resumedFrom = await startOf(partial, layer.size);
      body = Readable.from(download.chunks(), { objectMode: false });
      download.onInterrupted = () => {
        keepPartial = true;
      };
    }

    const compressed = new DigestingStream({ limit: { bytes: layer.size, what: `layer ${layer.digest}` } });
    let lastReport = 0;
    compressed.on('progress', () => {
      const now = Date.now();
      if (now - lastReport >= 100) {
        lastReport = now;
        event('downloading', compressed.size);
      }
    });

    // The hashed stream feeds the unpack (or, when the layer is stored
    // already, only its diffID check). When the unpack fails, the download
    // still runs to its end, so that a corrupted blob is reported as a
    // digest mismatch rather than as whatever the tar parser tripped on.
    // When the download fails, the unpack is stopped with it.
    const input = new PassThrough({ highWaterMark: 1 << 20 });
    const uncompressed = new DigestingStream();
    const tail = new TarTailStream();
    tail.onRepair = (what) => options.logger?.info(`layer ${layer.digest} ends without ${what}; reading it as Docker does`);
    let unpackError: unknown;
    const stopUnpack = (err: unknown) => {
      if (unpackError !== undefined) return;
      unpackError = err;
      compressed.unpipe(input);
      compressed.resume();
      const reason = err instanceof Error ? err : new Error(String(err));
      for (const s of [input, uncompressed, tail]) s.destroy(reason);
    };
    compressed.pipe(input);

    let stats: { entries: number; bytes: number } | undefined;
    const unpack: Promise<unknown>[] = [pipeline(input, decompressor(compression), uncompressed, tail).catch(stopUnpack)];
    if (record === undefined) {
      const diff = join(tmpLayer, 'diff');
      await mkdir(diff, { recursive: true, mode: 0o755 });
      unpack.push(
        applyLayer(tail, diff, { logger: options.logger, signal: options.signal }).then((s) => {
          stats = s;
        }, stopUnpack),
      );
    } else {
      tail.resume();
    }

    // Data starts flowing only now, once every leg is attached.
    const [downloaded] = await Promise.allSettled([
      pipeline(body, compressed).catch((err) => {
        stopUnpack(err);
        throw err;
      }),
      Promise.all(unpack),
    ]);
    if (downloaded.status === 'rejected') throw downloaded.reason;
    try {
      compressed.verify(`layer ${layer.digest}`, layer.digest, layer.size);
    } catch (err) {
      throw Object.assign(err as DigestMismatchError, { resumedFrom });
    }
    if (unpackError !== undefined) throw unpackError;

    event('verifying', compressed.size);
    uncompressed.verify(`diffID of layer ${layer.digest}`, diffID);

    if (!haveBlob) await commitBlobFile(store, partial, layer.digest, layer.size);
    if (record === undefined) {
      await commitLayer(store, tmpLayer, {
        diffID,
        size: stats?.bytes ?? 0,
        entries: stats?.entries ?? 0,
        unpacked: new Date().toISOString(),
        blobs: [layer.digest],
        tree: await layerTreeDigest(join(tmpLayer, 'diff')),
      });
    } else if (!linked) {
      await writeLayerRecord(store, { ...record, blobs: [...(record.blobs ?? []), layer.digest] });
    }
    event('complete', layer.size);
  } catch (err) {
    if (err instanceof MinidockError) throw err;
    throw new MinidockError('ERR_PULL', `pull layer ${layer.digest}: ${(err as Error).message}`, { cause: err });
  } finally {
    if (!haveBlob && !keepPartial) await unlink(partial).catch(() => {});
    await rm(tmpLayer, { recursive: true, force: true }).catch(() => {});
  }
}

/** Returns how many bytes of partial can be reused: its size, unless it is larger than the blob. */
async function startOf(partial: string, size: number): Promise<number> {
  const have = await stat(partial).then(
    (st) => st.size,
    () => 0,
  );
  if (have <= size) return have;
  await unlink(partial).catch(() => {});
  return 0;
}

// Resumes of one download, in all: a server that drops every connection
// after a few bytes still ends the pull.
const maxResumes = 20;

/**
 * The bytes of one blob, as an async iterable: first what `partial` holds
 * from an earlier attempt, then the registry's body from that offset on,
 * appended to `partial` before it is passed on. When the connection drops
 * mid-body, the rest is asked for again with a Range request; a server
 * that ignores Range and sends the whole blob has the part already held
 * skipped, never appended twice. Gives up after three attempts in a row
 * that bring no new byte, or after 20 resumes in all.
 */
function resumableDownload(
  source: BlobSource,
  layer: Descriptor,
  partial: string,
  options: PullOptions,
) {
  const logger = options.logger ?? silentLogger;
  const baseDelayMs = options.registry?.retry?.baseDelayMs ?? 250;
  const state = {
    resumedFrom: 0,
    /** Called when a network failure or an abort ends the download: what is held is worth keeping. */
    onInterrupted: () => {},
    async *chunks(): AsyncGenerator<Buffer> {
      let offset = state.resumedFrom;
      if (offset > 0) {
        logger.info(`layer ${layer.digest}: resuming at byte ${offset} of ${layer.size}`);
        for await (const chunk of createReadStream(partial, { end: offset - 1 })) yield chunk as Buffer;
      }
      // A pull killed after the last byte but before the rename left it
      // whole: asking for bytes from its end would get a 416. Its digest is
      // checked like any download's.
      if (offset >= layer.size) return;
      const fh = await open(partial, 'a', 0o644);
      try {
        for (let fruitless = 0, resumes = 0; ; resumes++) {
          let opened: OpenedBlob;
          try {
            opened = await source.open(layer, offset);
          } catch (err) {
            if (isTemporaryNetworkError(err) || options.signal?.aborted) state.onInterrupted();
            throw err;
          }
          // A 200 to a Range request starts at byte 0: skip what is held.
          let skip = offset - opened.offset;
          if (skip > 0) logger.debug(`layer ${layer.digest}: the server ignored Range; skipping ${skip} bytes`);
          const before = offset;
          try {
            for await (const data of opened.body) {
              let chunk = data as Buffer;
              if (skip > 0) {
                if (chunk.length <= skip) {
                  skip -= chunk.length;
                  continue;
                }
                chunk = chunk.subarray(skip);
                skip = 0;
              }
              if (offset + chunk.length > layer.size) {
                // Nothing beyond the descriptor's size reaches the disk.
                yield chunk;
                return;
              }
              await fh.write(chunk);
              offset += chunk.length;
              yield chunk;
            }
            return;
          } catch (err) {
            opened.body.destroy();
            if (options.signal?.aborted || !isTemporaryNetworkError(err)) {
              if (options.signal?.aborted) state.onInterrupted();
              throw err;
            }
            fruitless = offset > before ? 0 : fruitless + 1;
            if (fruitless >= 3 || resumes >= maxResumes) {
              state.onInterrupted();
              throw err;
            }
            const wait = Math.min(baseDelayMs * 2 ** fruitless, 10_000);
            logger.warn(
              `layer ${layer.digest}: ${connectionError(source.name, err).message.replace(/^connect to /, '')} ` +
                `at byte ${offset} of ${layer.size}, resuming in ${formatDelay(wait)}`,
            );
            await sleep(wait, undefined, { signal: options.signal }).catch((abort: unknown) => {
              state.onInterrupted();
              throw abort;
            });
          }
        }
      } finally {
        await fh.close();
      }
    },
  };
  return state;
}
