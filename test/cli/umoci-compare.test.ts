/**
 * minidock beside a peer: the fixture images pulled by the CLI, their layers
 * stacked read-only with overlay, must show exactly the tree that
 * `umoci unpack` extracts from the same OCI layouts.
 *
 * The overlay mount is made here rather than by `minidock run`: a container
 * gets its own /etc/hostname and /etc/hosts, which are not the image's.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { lstat, mkdir, mkdtemp, readdir, readFile, readlink, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { promisify } from 'node:util';
import { makeTestRoot, runCli } from '../helpers/cli.js';
import { fixtureLayouts } from '../helpers/fixtures.js';
import { missingTools, startRegistry, type TestRegistry } from '../helpers/registry.js';

const execFileAsync = promisify(execFile);
const umociBinary = '/usr/bin/umoci';

function whyNot(): string | false {
  if (process.getuid?.() !== 0) return 'needs root (umoci unpack keeps owners, overlay mounts)';
  if (!existsSync(umociBinary)) return `needs ${umociBinary} (Debian package umoci)`;
  if (!readFileSync('/proc/filesystems', 'utf8').includes('\toverlay\n')) return 'needs overlayfs in the kernel';
  return missingTools();
}

/** What is compared of one path. Fields that do not apply are absent. */
interface Entry {
  type: string;
  mode: string;
  uid: number;
  gid: number;
  mtime?: number;
  size?: number;
  nlink?: number;
  sha256?: string;
  target?: string;
  rdev?: number;
  xattrs: string;
  /** The other paths of this tree sharing this path's inode, sorted. */
  hardLinks?: string;
}

function typeOf(st: import('node:fs').Stats): string {
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
 * of the image.
 */
async function walkTree(top: string): Promise<Map<string, Entry>> {
  const { lgetxattr, llistxattr } = await import('../../src/sys/index.js');
  const entries = new Map<string, Entry>();
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
    const e: Entry = { type, mode: (st.mode & 0o7777).toString(8), uid: st.uid, gid: st.gid, xattrs };
    // The root's mtime is nobody's content: umoci creates rootfs/ itself
    // (and dates it to the epoch), minidock's root is the topmost layer
    // directory, dated when it was unpacked; no layer tar of the fixtures
    // has an entry for "./" that would set either.
    if (rel !== '/') e.mtime = Math.floor(st.mtimeMs / 1000);
    if (type !== 'directory') {
      e.size = st.size;
      e.nlink = st.nlink;
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
function differences(theirs: Map<string, Entry>, ours: Map<string, Entry>): string[] {
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
    const fields = [...new Set([...Object.keys(a), ...Object.keys(b)])] as (keyof Entry)[];
    for (const f of fields.sort()) {
      if (a[f] !== b[f]) out.push(`${path}: ${f} umoci=${JSON.stringify(a[f])} minidock=${JSON.stringify(b[f])}`);
    }
  }
  return out;
}

describe('minidock unpacks images as umoci does', { skip: whyNot() }, () => {
  let registry: TestRegistry;
  let layouts: string;
  let root: string;
  let work: string;

  before(async () => {
    layouts = await fixtureLayouts();
    registry = await startRegistry();
    root = makeTestRoot();
    work = await mkdtemp(join(tmpdir(), 'minidock-umoci-'));
  });

  after(async () => {
    await registry?.stop();
    if (root) await rm(root, { recursive: true, force: true });
    if (work) await rm(work, { recursive: true, force: true });
  });

  for (const name of ['busybox', 'layered']) {
    test(`${name}: the stacked layers show umoci's rootfs, path for path`, async () => {
      const layout = join(layouts, name);
      await registry.push(layout, `library/${name}`, 'latest');
      const ref = `${registry.host}/library/${name}:latest`;
      const pulled = await runCli(['pull', ref], { root });
      assert.equal(pulled.code, 0, pulled.stderr);

      const bundle = join(work, `${name}-bundle`);
      await execFileAsync(umociBinary, ['unpack', '--image', `${layout}:latest`, bundle]);

      const repos = JSON.parse(await readFile(join(root, 'repositories.json'), 'utf8')) as Record<string, string>;
      const id = repos[ref]!;
      assert.match(id, /^sha256:[0-9a-f]{64}$/);
      const record = JSON.parse(await readFile(join(root, 'images', `${id.slice(7)}.json`), 'utf8')) as { diffIDs: string[] };
      // Topmost first. Overlay wants two lower directories at least when
      // there is no upper one: an empty one at the bottom adds nothing.
      const lowers = [...record.diffIDs].reverse().map((d) => join(root, 'layers', d.slice(7), 'diff'));
      const empty = join(work, `${name}-empty`);
      await mkdir(empty);
      if (lowers.length < 2) lowers.push(empty);

      const mnt = join(work, `${name}-merged`);
      await mkdir(mnt);
      await execFileAsync('mount', ['-t', 'overlay', 'overlay', '-o', `ro,lowerdir=${lowers.join(':')}`, mnt]);
      let theirs: Map<string, Entry>;
      let ours: Map<string, Entry>;
      try {
        theirs = await walkTree(join(bundle, 'rootfs'));
        ours = await walkTree(mnt);
      } finally {
        await execFileAsync('umount', [mnt]);
      }

      assert.ok(theirs.get('bin/busybox')?.type === 'file', 'umoci unpacked bin/busybox');
      assert.ok(theirs.size > 100, `umoci's rootfs has ${theirs.size} paths`);
      if (name === 'layered') {
        // The comparison covers a whiteout and a hard link.
        assert.equal(theirs.get('data/old'), undefined);
        assert.equal(theirs.get('data/hard1')?.hardLinks, 'data/hard2');
      }
      const diffs = differences(theirs, ours);
      assert.deepEqual(diffs, [], `${diffs.length} differences:\n${diffs.join('\n')}`);
    });
  }
});
