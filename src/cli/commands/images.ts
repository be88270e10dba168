/**
 * `minidock images` and `minidock rmi`.
 */
import { hexOf, type Digest } from '../../digest.js';
import { MinidockError, NotFoundError } from '../../errors.js';
import { familiarName, parseReference } from '../../reference.js';
import {
  deleteImage,
  listContainers,
  listImageRecords,
  lookupImage,
  readLayerRecord,
  readRepositories,
  withContentAndMetadata,
  writeRepositories,
  type ImageRecord,
  type Store,
} from '../../store/index.js';
import type { Context } from '../context.js';
import { ago, humanSize, table } from '../output.js';

/** An image's unpacked size: the file bytes of its layers. */
async function imageSize(store: Store, rec: ImageRecord): Promise<number> {
  const sizes = await Promise.all(rec.diffIDs.map((d) => readLayerRecord(store, d)));
  return sizes.reduce((sum, l) => sum + (l?.size ?? 0), 0);
}

/** Splits "registry/repo:tag" at the tag's colon. */
export function splitTag(key: string): [string, string] {
  const i = key.lastIndexOf(':');
  return [key.slice(0, i), key.slice(i + 1)];
}

export function displayName(repo: string): string {
  const slash = repo.indexOf('/');
  return familiarName({ registry: repo.slice(0, slash), repository: repo.slice(slash + 1) });
}

/** One line per tag of each image (one "<none>" line for an untagged image), newest first. */
export function imageRows(records: ImageRecord[], repos: Record<string, Digest>): { repo: string; tag: string; rec: ImageRecord }[] {
  const rows: { repo: string; tag: string; rec: ImageRecord }[] = [];
  for (const rec of records) {
    const tags = Object.entries(repos).filter(([, id]) => id === rec.id);
    if (tags.length === 0) rows.push({ repo: '<none>', tag: '<none>', rec });
    for (const [key] of tags) {
      const [repo, tag] = splitTag(key);
      rows.push({ repo: displayName(repo), tag, rec });
    }
  }
  return rows.sort((a, b) => (b.rec.created ?? '').localeCompare(a.rec.created ?? '') || a.repo.localeCompare(b.repo));
}

export async function imagesCommand(ctx: Context, flags: { quiet?: boolean; noTrunc?: boolean }): Promise<void> {
  const store = await ctx.store();
  const [records, repos] = await Promise.all([listImageRecords(store), readRepositories(store)]);
  const rows = imageRows(records, repos);
  const id = (rec: ImageRecord) => (flags.noTrunc ? rec.id : hexOf(rec.id).slice(0, 12));
  if (flags.quiet) {
    process.stdout.write([...new Set(rows.map((r) => id(r.rec)))].map((s) => `${s}\n`).join(''));
    return;
  }
  const sized = await Promise.all(rows.map(async (r) => [r.repo, r.tag, id(r.rec), ago(r.rec.created), humanSize(await imageSize(store, r.rec))]));
  process.stdout.write(`${table(['REPOSITORY', 'TAG', 'IMAGE ID', 'CREATED', 'SIZE'], sized)}\n`);
}

/**
 * Removes images. A tag reference untags; the image itself goes once no tag
 * is left. An id removes the image, refusing when several tags point at it
 * (unless force). An image a container uses is refused unless force.
 */
export async function rmiCommand(ctx: Context, images: string[], flags: { force?: boolean }): Promise<number> {
  const store = await ctx.store();
  let status = 0;
  for (const image of images) {
    try {
      const lines = await withContentAndMetadata(store, () => removeOne(store, image, flags.force ?? false));
      process.stdout.write(lines.map((l) => `${l}\n`).join(''));
    } catch (err) {
      if (!(err instanceof MinidockError) || images.length === 1) throw err;
      process.stderr.write(`minidock: ${err.message}\n`);
      status = 125; // as for one name: minidock's own error
    }
  }
  return status;
}

async function removeOne(store: Store, image: string, force: boolean): Promise<string[]> {
  const rec = await lookupImage(store, image, parseReference);
  if (!rec) throw new NotFoundError(`no such image: ${image}`);
  const repos = await readRepositories(store);
  const tags = Object.keys(repos).filter((k) => repos[k] === rec.id);
  const byId = /^(?:sha256:)?[0-9a-f]{12,64}$/.test(image) && hexOf(rec.id).startsWith(image.replace(/^sha256:/, ''));
  const lines: string[] = [];

  let untag: string[];
  if (byId) {
    if (tags.length > 1 && !force) {
      throw new MinidockError('ERR_CONFLICT', `conflict: unable to delete ${hexOf(rec.id).slice(0, 12)} (must be forced) - image is referenced in multiple repositories`);
    }
    untag = tags;
  } else {
    const ref = parseReference(image);
    untag = ref.tag !== undefined ? [`${ref.registry}/${ref.repository}:${ref.tag}`].filter((k) => repos[k] === rec.id) : [];
  }
  const remaining = tags.filter((t) => !untag.includes(t));

  if (remaining.length === 0) {
    const users = (await listContainers(store)).filter((c) => c.imageId === rec.id);
    if (users.length > 0 && !force) {
      throw new MinidockError(
        'ERR_CONFLICT',
        `conflict: unable to remove image ${image} (must force) - container ${users[0]!.id.slice(0, 12)} is using its referenced image ${hexOf(rec.id).slice(0, 12)}`,
        { hint: `remove the container first (minidock rm ${users[0]!.id.slice(0, 12)}), or use rmi -f` },
      );
    }
  }

  for (const key of untag) {
    delete repos[key];
    const [repo, tag] = splitTag(key);
    lines.push(`Untagged: ${displayName(repo)}:${tag}`);
  }
  await writeRepositories(store, repos);
  if (remaining.length === 0) {
    const freed = await deleteImage(store, rec);
    lines.push(`Deleted: ${rec.id}`);
    for (const d of freed.layers) lines.push(`Deleted: ${d as Digest}`);
  }
  return lines;
}
