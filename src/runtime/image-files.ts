/**
 * Reading one file of an image's merged root filesystem straight from its
 * layer directories, without mounting anything, as overlayfs would show it:
 * the topmost layer that has a name wins, unless a layer above deleted it (a
 * whiteout device) or made a directory on its path opaque.
 *
 * Symlinks are resolved inside the image, never on the host: an absolute
 * target starts again at the image's root, and ".." stops at it, as
 * Docker's scoped resolution does. Nothing outside the layer directories is
 * ever read, whatever links an image ships.
 */
import { lstat, readFile, readlink } from 'node:fs/promises';
import type { Stats } from 'node:fs';
import { join } from 'node:path';
import { MinidockError } from '../errors.js';

const maxLinks = 40;

type IsOpaque = (dir: string) => Promise<boolean>;

function split(path: string): string[] {
  return path.split('/').filter((p) => p !== '' && p !== '.');
}

/**
 * Finds name `parts` (already resolved, all ancestors real directories in
 * the merged view) in the topmost layer that shows it.
 */
async function lookup(
  layers: string[],
  parts: string[],
  isOpaque: IsOpaque,
): Promise<{ layer: string; st: Stats } | undefined> {
  for (const layer of layers) {
    const st = await lstat(join(layer, ...parts)).catch(() => undefined);
    if (st !== undefined) {
      return st.isCharacterDevice() && st.rdev === 0 ? undefined : { layer, st };
    }
    // Absent here. The layers below still show through unless this layer
    // has a non-directory or an opaque directory on the way.
    for (let i = 1; i < parts.length; i++) {
      const dir = join(layer, ...parts.slice(0, i));
      const a = await lstat(dir).catch(() => undefined);
      if (a === undefined) break;
      if (!a.isDirectory() || (await isOpaque(dir))) return undefined;
    }
  }
  return undefined;
}

/** Where a path of the merged view lives: its layer, its resolved components, its lstat. */
export interface MergedPath {
  layer: string;
  parts: string[];
  st: Stats;
}

/**
 * Resolves path (absolute, inside the image) in the merged view of
 * `layers` (diff directories, topmost first), following symlinks inside
 * the image, the last component's too unless options.followLast is
 * false. Returns undefined when the
 * merged view has nothing there. `isOpaque` reports whether a directory of
 * a layer carries overlay's opaque mark.
 */
export async function resolveMergedPath(
  layers: string[],
  path: string,
  isOpaque: IsOpaque,
  options: { followLast?: boolean } = {},
): Promise<MergedPath | undefined> {
  let pending = split(path);
  let resolved: string[] = [];
  let found: { layer: string; st: Stats } | undefined;
  let links = 0;
  while (pending.length > 0) {
    const name = pending.shift()!;
    if (name === '..') {
      resolved = resolved.slice(0, -1);
      found = undefined;
      continue;
    }
    const candidate = [...resolved, name];
    found = await lookup(layers, candidate, isOpaque);
    if (found === undefined) return undefined;
    if (found.st.isSymbolicLink() && (pending.length > 0 || options.followLast !== false)) {
      if (++links > maxLinks) return undefined;
      const target = await readlink(join(found.layer, ...candidate));
      if (target.startsWith('/')) resolved = [];
      pending = [...split(target), ...pending];
      found = undefined;
      continue;
    }
    if (pending.length > 0 && !found.st.isDirectory()) return undefined;
    resolved = candidate;
  }
  if (found === undefined) {
    // The root, or a path that ".." led back to a directory: look it up again.
    if (resolved.length === 0) return { layer: layers[layers.length - 1] ?? '', parts: [], st: await lstat(layers[layers.length - 1] ?? '/nonexistent') };
    found = await lookup(layers, resolved, isOpaque);
    if (found === undefined) return undefined;
  }
  return { layer: found.layer, parts: resolved, st: found.st };
}

/**
 * Returns the content of path (absolute, inside the image) as UTF-8, or
 * undefined when the merged view has no regular file there. `layers` lists
 * the layer diff directories topmost first. `isOpaque` reports whether a
 * directory of a layer carries overlay's opaque mark. A file larger than
 * maxBytes is not read: MinidockError (ERR_IMAGE_FILE) says so, since an
 * image can ship a file of any size.
 */
export async function readMergedFile(
  layers: string[],
  path: string,
  isOpaque: IsOpaque,
  maxBytes: number,
): Promise<string | undefined> {
  const found = await resolveMergedPath(layers, path, isOpaque);
  if (found === undefined || !found.st.isFile()) return undefined;
  if (found.st.size > maxBytes) {
    throw new MinidockError('ERR_IMAGE_FILE', `read ${path} of the image: it is ${found.st.size} bytes, more than the ${maxBytes} minidock reads`);
  }
  return readFile(join(found.layer, ...found.parts), 'utf8');
}
