/**
 * Listing a directory tree for comparison with another: minidock's merged
 * view beside a peer's unpacked rootfs.
 */
import { createHash } from 'node:crypto';
import type { Stats } from 'node:fs';
import { lstat, readdir, readFile, readlink } from 'node:fs/promises';
import { join } from 'node:path';
import { lgetxattr, llistxattr } from '../../src/sys/index.js';

/** What is compared of one path. Fields that do not apply are absent. */
export interface TreeEntry {
  type: string;
  mode?: string;
  uid?: number;
  gid?: number;
  mtime?: number;
  size?: number;
  sha256?: string;
  target?: string;
  rdev?: number;
  xattrs: string;
  /** The other paths of this tree sharing this path's inode, sorted. */
  hardLinks?: string;
}

function typeOf(st: Stats): string {
  if (st.isDirectory()) return 'directory';
  if (st.isFile()) return 'file';
  if (st.isSymbolicLink()) return 'symlink';
  if (st.isCharacterDevice()) return 'char device';
  if (st.isBlockDevice()) return 'block device';
  if (st.isFIFO()) return 'fifo';
  if (st.isSocket()) return 'socket';
  return 'unknown';
}

/**
 * Lists a tree with lstat, keyed by path ("/" for the root). Directory
 * sizes and link counts are left out: they are the filesystem's own
 * bookkeeping (overlay reports 1 link for a merged directory), not content
 * of the image. Which paths share an inode (hardLinks) is kept instead of
 * a file's link count: when a later layer replaces one name of a hard link
 * group, the lower inode keeps its count under overlay (as in Docker),
 * while a flat rootfs counts one link less.
 */
export async function walkTree(top: string): Promise<Map<string, TreeEntry>> {
  const entries = new Map<string, TreeEntry>();
  const inodes = new Map<string, string[]>();
  const inodeOf = new Map<string, string>();
  const visit = async (rel: string): Promise<void> => {
    const abs = rel === '/' ? top : join(top, rel);
    const st = await lstat(abs, { bigint: false });
    const type = typeOf(st);
    const xattrs = llistxattr(abs)
      // Only the overlay side can have overlay's own marks (and overlay
      // hides them from a merged view anyway).
      .filter((name) => !name.startsWith('trusted.overlay.'))
      .sort()
      .map((name) => `${name}=${lgetxattr(abs, name)?.toString('hex') ?? ''}`)
      .join(' ');
    const e: TreeEntry = { type, mode: (st.mode & 0o7777).toString(8), uid: st.uid, gid: st.gid, xattrs };
    // The root's metadata is nobody's content. umoci creates rootfs/
    // itself (dated to the epoch) and applies a layer's "./" entry to it;
    // minidock's root is the topmost layer directory, 0755 root, dated
    // when it was unpacked, and skips "./" entries as Docker does.
    if (rel === '/') {
      e.mode = e.uid = e.gid = undefined;
    } else {
      e.mtime = Math.floor(st.mtimeMs / 1000);
    }
    if (type !== 'directory') {
      e.size = st.size;
      const key = `${st.dev}:${st.ino}`;
      inodes.set(key, [...(inodes.get(key) ?? []), rel]);
      inodeOf.set(rel, key);
    }
    if (type === 'file') e.sha256 = createHash('sha256').update(await readFile(abs)).digest('hex');
    if (type === 'symlink') e.target = await readlink(abs);
    if (type === 'char device' || type === 'block device') e.rdev = st.rdev;
    entries.set(rel, e);
    if (type === 'directory') {
      for (const name of (await readdir(abs)).sort()) await visit(rel === '/' ? name : `${rel}/${name}`);
    }
  };
  await visit('/');
  for (const [rel, key] of inodeOf) {
    const others = inodes.get(key)!.filter((p) => p !== rel).sort();
    if (others.length > 0) entries.get(rel)!.hardLinks = others.join(' ');
  }
  return entries;
}

/** Every difference between two listings, one line each. */
export function differences(theirs: Map<string, TreeEntry>, ours: Map<string, TreeEntry>): string[] {
  const out: string[] = [];
  const paths = [...new Set([...theirs.keys(), ...ours.keys()])].sort();
  for (const path of paths) {
    const a = theirs.get(path);
    const b = ours.get(path);
    if (a === undefined) {
      out.push(`${path}: only in minidock (${b!.type})`);
      continue;
    }
    if (b === undefined) {
      out.push(`${path}: only in umoci (${a.type})`);
      continue;
    }
    const fields = [...new Set([...Object.keys(a), ...Object.keys(b)])] as (keyof TreeEntry)[];
    for (const f of fields.sort()) {
      if (a[f] !== b[f]) out.push(`${path}: ${f} umoci=${JSON.stringify(a[f])} minidock=${JSON.stringify(b[f])}`);
    }
  }
  return out;
}

