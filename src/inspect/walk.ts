/**
 * Walking one unpacked layer directory (overlay format) in a fixed order:
 * depth first, each directory's names sorted, parents before children. Every
 * layer walked this way lists its paths in the same order, which lets
 * several layers be merged like sorted files (see merge.ts) without holding
 * any of them whole in memory.
 */
import fs from 'node:fs';
import { join } from 'node:path';
import { lgetxattr, splitDev } from '../sys/index.js';
import { MinidockError } from '../errors.js';

/** What an entry of a layer is. A whiteout is overlay's 0/0 character device. */
export type EntryKind = 'file' | 'dir' | 'symlink' | 'char' | 'block' | 'fifo' | 'socket' | 'whiteout';

/** One name in a layer directory, as lstat and the overlay xattrs describe it. */
/** What a listing shows of one name, whether read from a layer directory or a tar. */
export interface EntryFacts {
  /** Path inside the image, without a leading slash ("etc/passwd"). */
  path: string;
  kind: EntryKind;
  /** Permission bits, set-id and sticky bits (mode & 07777). */
  mode: number;
  uid: number;
  gid: number;
  /** Content bytes of a regular file; 0 for anything else. */
  size: number;
  /** Modification time, in milliseconds since the epoch. */
  mtime: number;
  /** Target of a symlink. */
  target?: string;
  /** For the later names of a hard-link group: the group's first name in walk order. */
  linkTo?: string;
  /** Device numbers of a character or block device. */
  device?: { major: number; minor: number };
}

export interface LayerEntry extends EntryFacts {
  /** The path's components joined by NUL: the sort key every walk and merge uses. */
  key: string;
  /** Number of components: 1 for a name in the root. */
  depth: number;
  /**
   * Bytes this name stores in the layer: its size for a regular file, but 0
   * for the second and later names of a hard-link group (the content is
   * stored once, as a tar stores it once).
   */
  bytes: number;
  /** A directory carrying overlay's opaque mark: nothing below it shows through. */
  opaque?: boolean;
  /** A directory that holds at least one name in this layer (unknown below a walk's maxDepth). */
  hasChildren?: boolean;
  /** Inode number, identifying a physical file (with the layer directory). */
  ino: number;
  /** Number of names the inode has in its layer directory. */
  nlink: number;
}

/** Options of walkLayer. */
export interface WalkOptions {
  /**
   * Walk only this subtree (components, e.g. ["usr", "lib"]): its ancestors
   * are yielded first (as far as the layer has them as directories), then
   * the subtree itself.
   */
  under?: string[];
  /** Do not descend below this depth (1 lists only the root's names, or under's). */
  maxDepth?: number;
}

const opaqueXattr = 'trusted.overlay.opaque';

/** Joins path components as the sort key (NUL sorts before every name byte). */
export function keyOf(parts: string[]): string {
  return parts.join('\0');
}

/** Splits a user's path ("/usr/lib/", "usr//lib") into components; "." and "" are dropped. */
export function splitPath(path: string): string[] {
  return path.split('/').filter((p) => p !== '' && p !== '.');
}

function kindOf(st: fs.Stats): EntryKind {
  if (st.isFile()) return 'file';
  if (st.isDirectory()) return 'dir';
  if (st.isSymbolicLink()) return 'symlink';
  if (st.isCharacterDevice()) return st.rdev === 0 ? 'whiteout' : 'char';
  if (st.isBlockDevice()) return 'block';
  if (st.isFIFO()) return 'fifo';
  return 'socket';
}

/** Sorted names of a directory: the one order every walk and merge agrees on. */
function sortedNames(dir: string): string[] {
  return fs.readdirSync(dir).sort();
}

interface Frame {
  parts: string[];
  names: string[];
  next: number;
}

/**
 * Yields the entries of the layer directory `dir` depth first, names
 * sorted, each directory before what it holds. Memory holds one sorted name
 * list per directory on the current path (so it grows with the largest
 * directory, not with the layer), plus the first name of each hard-link
 * group seen. Reads only: nothing is opened for writing, nothing mounted.
 * Throws the fs errors it meets (a layer directory is never changed while
 * minidock reads it, except a running container's upper directory).
 */
export function* walkLayer(dir: string, options: WalkOptions = {}): Generator<LayerEntry> {
  try {
    yield* walkLayerPaths(dir, options);
  } catch (err) {
    // A container can nest directories deeper than a path can name
    // (PATH_MAX); the walk goes by whole paths, so it stops there.
    if ((err as NodeJS.ErrnoException).code !== 'ENAMETOOLONG') throw err;
    throw new MinidockError('ERR_TOO_DEEP', `read ${JSON.stringify(dir)}: it holds a path longer than the system allows`, {
      cause: err,
    });
  }
}

function* walkLayerPaths(dir: string, options: WalkOptions): Generator<LayerEntry> {
  const under = options.under ?? [];
  const maxDepth = options.maxDepth ?? Infinity;
  const firstNames = new Map<number, string>();

  const entryAt = (parts: string[], st: fs.Stats, abs: string): LayerEntry => {
    const kind = kindOf(st);
    const path = parts.join('/');
    const e: LayerEntry = {
      path,
      key: keyOf(parts),
      depth: parts.length,
      kind,
      mode: st.mode & 0o7777,
      uid: st.uid,
      gid: st.gid,
      size: kind === 'file' ? st.size : 0,
      bytes: kind === 'file' ? st.size : 0,
      mtime: Math.trunc(st.mtimeMs),
      ino: st.ino,
      nlink: st.nlink,
    };
    if (kind === 'symlink') e.target = fs.readlinkSync(abs);
    if (kind === 'char' || kind === 'block') e.device = splitDev(st.rdev);
    if (kind === 'file' && st.nlink > 1) {
      const first = firstNames.get(st.ino);
      if (first === undefined) firstNames.set(st.ino, path);
      else {
        e.linkTo = first;
        e.bytes = 0;
      }
    }
    if (kind === 'dir' && lgetxattr(abs, opaqueXattr)?.toString() === 'y') e.opaque = true;
    return e;
  };

  // The ancestors of the subtree, while the layer has them as directories.
  for (let i = 1; i <= under.length; i++) {
    const parts = under.slice(0, i);
    const abs = join(dir, ...parts);
    const st = lstatOrUndefined(abs);
    if (st === undefined) return;
    const e = entryAt(parts, st, abs);
    if (e.kind !== 'dir') {
      yield e;
      return;
    }
    e.hasChildren = sortedNames(abs).length > 0;
    yield e;
  }

  if (maxDepth <= 0) return;
  const top = join(dir, ...under);
  if (under.length === 0 && lstatOrUndefined(top) === undefined) return;
  const stack: Frame[] = [{ parts: under, names: sortedNames(top), next: 0 }];
  while (stack.length > 0) {
    const frame = stack[stack.length - 1]!;
    if (frame.next >= frame.names.length) {
      stack.pop();
      continue;
    }
    const parts = [...frame.parts, frame.names[frame.next++]!];
    const abs = join(dir, ...parts);
    const st = fs.lstatSync(abs);
    const e = entryAt(parts, st, abs);
    if (e.kind === 'dir') {
      // Below maxDepth, hasChildren stays unknown: reading every directory
      // a listing shows would cost a readdir each.
      if (parts.length - under.length >= maxDepth) {
        yield e;
        continue;
      }
      const names = sortedNames(abs);
      e.hasChildren = names.length > 0;
      yield e;
      if (names.length > 0) stack.push({ parts, names, next: 0 });
      continue;
    }
    yield e;
  }
}

function lstatOrUndefined(path: string): fs.Stats | undefined {
  try {
    return fs.lstatSync(path);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOENT' || code === 'ENOTDIR') return undefined;
    throw err;
  }
}
