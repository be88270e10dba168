/**
 * What the inspect commands share: finding an image or a container by what
 * the user typed, its layer directories, the --format flag, and the
 * terminal forms of modes and entries.
 */
import { existsSync } from 'node:fs';
import { MinidockError, NotFoundError } from '../../errors.js';
import type { EntryFacts, LayerEntry, LayerInfo } from '../../inspect/index.js';
import type { ImageConfig } from '../../image/index.js';
import { parseReference } from '../../reference.js';
import {
  containerDir,
  layerDiffDir,
  lookupImage,
  readImageRecord,
  type ContainerRecord,
  type ImageRecord,
  type Store,
} from '../../store/index.js';
import { findContainer, inUse } from './containers.js';
import { printable } from '../output.js';

/** The version of every JSON document the inspect commands print (docs/inspect.md). */
export const schemaVersion = 1;

/** An image, or a container with its image. */
export type Target =
  | { kind: 'image'; image: ImageRecord; layers: string[] }
  | { kind: 'container'; container: ContainerRecord; image: ImageRecord | undefined; layers: string[] };

/** Parses --format: undefined or "json" (and "text", the default, by name). */
export function parseFormat(value: string | undefined): 'text' | 'json' {
  if (value === undefined || value === 'text') return 'text';
  if (value === 'json') return 'json';
  throw new MinidockError('ERR_BAD_ARGUMENT', `unsupported format ${JSON.stringify(value)}`, { hint: 'use --format json, or no --format for text' });
}

/** Finds an image by id, id prefix or reference; throws NotFoundError naming it. */
export async function findImage(store: Store, text: string): Promise<ImageRecord> {
  const rec = await lookupImage(store, text, parseReference);
  if (rec === undefined) throw new NotFoundError(`no such image: ${text}`, { hint: 'minidock images lists the stored images' });
  return rec;
}

/**
 * The diff directories of an image's layers, bottom first. Throws when one
 * is missing: a walk would otherwise show the image without that layer.
 */
export function imageLayers(store: Store, rec: Pick<ImageRecord, 'id' | 'diffIDs'>): string[] {
  return rec.diffIDs.map((d) => {
    const dir = layerDiffDir(store, d);
    if (!existsSync(dir)) {
      throw new MinidockError('ERR_STORE_CORRUPT', `layer ${d} of image ${rec.id} is missing from the store`, { hint: 'pull the image again' });
    }
    return dir;
  });
}

/**
 * Finds a container or image whose files are about to be read. A running
 * container's processes may change its writable layer under the read: a
 * directory swapped for a symlink between a check and a readdir or open
 * would lead the read outside the store, which Node's fs cannot prevent
 * (no openat with RESOLVE_BENEATH). So a container's files are read only
 * once it has exited; image layers never change.
 */
export async function findFilesTarget(store: Store, text: string): Promise<Target> {
  const target = await findTarget(store, text);
  if (target.kind === 'container' && inUse(target.container)) {
    throw new MinidockError('ERR_CONFLICT', `container ${text} is running or starting: its files change while they are read`, {
      hint: 'read it once it has exited; its image can be read any time',
    });
  }
  return target;
}

/**
 * Finds what text names: a container (by id, id prefix or name) first, as
 * `docker inspect` looks, then an image; `type` restricts the search.
 */
export async function findTarget(store: Store, text: string, type?: 'image' | 'container'): Promise<Target> {
  if (type !== 'image') {
    const container = await findContainer(store, text).catch((err: unknown) => {
      if (type === 'container' || !(err instanceof NotFoundError)) throw err;
      return undefined;
    });
    if (container !== undefined) {
      const image = await readImageRecord(store, container.imageId);
      const layers = [...imageLayers(store, { id: container.imageId, diffIDs: container.diffIDs }), `${containerDir(store, container.id)}/upper`];
      return { kind: 'container', container, image, layers };
    }
  }
  const rec = await lookupImage(store, text, parseReference).catch((err: unknown) => {
    if (type === undefined && err instanceof MinidockError && err.code === 'ERR_BAD_REFERENCE') return undefined;
    throw err;
  });
  if (rec === undefined) {
    throw new NotFoundError(`no such ${type ?? 'image or container'}: ${text}`, {
      hint: 'minidock images and minidock ps -a list what the store holds',
    });
  }
  return { kind: 'image', image: rec, layers: imageLayers(store, rec) };
}

const typeChars: Record<LayerEntry['kind'], string> = {
  file: '-',
  dir: 'd',
  symlink: 'l',
  char: 'c',
  block: 'b',
  fifo: 'p',
  socket: 's',
  whiteout: 'c',
};

/** Formats a kind and mode as `ls -l` does ("drwxr-xr-x", "-rwsr-xr-x"). */
export function modeString(kind: LayerEntry['kind'], mode: number): string {
  const rwx = (bits: number, special: boolean, s: string) =>
    `${bits & 4 ? 'r' : '-'}${bits & 2 ? 'w' : '-'}${special ? (bits & 1 ? s : s.toUpperCase()) : bits & 1 ? 'x' : '-'}`;
  return (
    typeChars[kind] +
    rwx(mode >> 6, (mode & 0o4000) !== 0, 's') +
    rwx(mode >> 3, (mode & 0o2000) !== 0, 's') +
    rwx(mode, (mode & 0o1000) !== 0, 't')
  );
}

/** "YYYY-MM-DD HH:MM" in UTC. */
export function shortTime(ms: number): string {
  return new Date(ms).toISOString().slice(0, 16).replace('T', ' ');
}

/** What follows a name in a listing: a link target, a hard link, device numbers. */
export function entrySuffix(e: { target?: string; linkTo?: string; device?: { major: number; minor: number } }): string {
  if (e.target !== undefined) return ` -> ${printable(e.target)}`;
  if (e.linkTo !== undefined) return ` link to /${printable(e.linkTo)}`;
  if (e.device !== undefined) return ` (device ${e.device.major}, ${e.device.minor})`;
  return '';
}

/** A stored layer, as inspect's and layers' JSON show it. */
export function layerJSON(l: LayerInfo): Record<string, unknown> {
  return {
    index: l.index,
    digest: l.digest,
    diffID: l.diffID,
    mediaType: l.mediaType,
    size: l.size,
    unpackedSize: l.unpackedSize ?? null,
  };
}

/** What an image runs, as inspect's JSON shows it (local and --remote alike). */
export function runConfigJSON(config: ImageConfig): Record<string, unknown> {
  const cc = config.config ?? {};
  return {
    labels: cc.Labels ?? {},
    entrypoint: cc.Entrypoint ?? null,
    cmd: cc.Cmd ?? null,
    env: cc.Env ?? [],
    workingDir: cc.WorkingDir ?? '',
    user: cc.User ?? '',
  };
}

/** The JSON form of an entry, shared by every command that lists entries. */
export function entryJSON(e: EntryFacts & { opaque?: boolean }): Record<string, unknown> {
  return {
    path: `/${e.path}`,
    type: e.kind,
    mode: e.mode,
    uid: e.uid,
    gid: e.gid,
    size: e.size,
    mtime: new Date(e.mtime).toISOString(),
    ...(e.target !== undefined ? { linkTarget: e.target } : {}),
    ...(e.linkTo !== undefined ? { hardLinkTo: `/${e.linkTo}` } : {}),
    ...(e.device !== undefined ? { device: e.device } : {}),
    ...(e.opaque ? { opaque: true } : {}),
  };
}

/** The status of a command whose reader went away, as a shell reports death by SIGPIPE. */
const brokenPipeStatus = 128 + 13;

/**
 * Writes text to stdout (synchronous for files and pipes on Linux). Once
 * the reader has gone (`minidock layers IMAGE | head`), a failed write has
 * destroyed stdout: the listing stops there instead of running on unread.
 */
export function out(text: string): void {
  if (process.stdout.destroyed) process.exit(brokenPipeStatus);
  process.stdout.write(text);
}

/** What a change line shows: an entry, with its op and, for a deletion, why and what went. */
export interface ChangeLike extends Omit<EntryFacts, 'mtime'> {
  op: string;
  opaque?: boolean;
  deletedBy?: 'whiteout' | 'opaque';
  removed?: { entries: number; bytes: number };
}

/**
 * One line of a layer listing: op, mode, owner, size and name (the whole
 * path, or `name` as given, e.g. indented for --tree), then link targets
 * and what a deletion removes.
 */
export function changeLine(c: ChangeLike, name = `/${printable(c.path)}`): string {
  const removed = c.removed === undefined ? '' : ` (removes ${c.removed.entries} entries, ${c.removed.bytes} bytes)`;
  if (c.op === 'D') {
    const why = c.deletedBy === 'opaque' ? '(opaque dir)' : '(whiteout)';
    return `D  ${why.padEnd(34)}${name}${removed}`;
  }
  const size = c.kind === 'file' ? String(c.size) : '';
  const opaque = c.opaque ? ' (opaque: hides what lower layers hold below)' : '';
  return `${c.op}  ${modeString(c.kind, c.mode)}  ${`${c.uid}/${c.gid}`.padEnd(9)} ${size.padStart(10)}  ${name}${entrySuffix(c)}${opaque}${removed}`;
}
