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
import { existsSync, readFileSync } from 'node:fs';
import { mkdir, mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { promisify } from 'node:util';
import { makeTestRoot, runCli } from '../helpers/cli.js';
import { fixtureLayouts } from '../helpers/fixtures.js';
import { writeLayout } from '../helpers/layout.js';
import { makeTar, sparseEntries, type TarEntry } from '../helpers/make-tar.js';
import { missingTools, startRegistry, type TestRegistry } from '../helpers/registry.js';
import { differences, walkTree, type TreeEntry } from '../helpers/tree.js';

const execFileAsync = promisify(execFile);
const umociBinary = '/usr/bin/umoci';

function whyNot(): string | false {
  if (process.getuid?.() !== 0) return 'needs root (umoci unpack keeps owners, overlay mounts)';
  if (!existsSync(umociBinary)) return `needs ${umociBinary} (Debian package umoci)`;
  if (!readFileSync('/proc/filesystems', 'utf8').includes('\toverlay\n')) return 'needs overlayfs in the kernel';
  return missingTools();
}

const t1 = new Date('2021-03-04T05:06:07Z');

// security.capability (vfs_cap_data revision 2, effective, CAP_NET_RAW and
// CAP_SYS_ADMIN permitted): bytes above 0x7f and NULs.
const capability = Buffer.alloc(20);
capability.writeUInt32LE(0x02000001, 0);
capability.writeUInt32LE(((1 << 13) | (1 << 21) | (1 << 31)) >>> 0, 4);

const longDir = `${'d'.repeat(90)}/${'e'.repeat(90)}`;

/**
 * The crafted image: what the fixtures lack (devices, a fifo, xattrs,
 * special mode bits, long names in both formats, hard link groups, sparse
 * files), then a
 * layer of whiteouts, an opaque directory and a replaced group member,
 * with trailing data after its end blocks. Every directory has its own
 * entry: a directory made implicitly is dated when it is unpacked, by
 * either tool.
 */
async function craftedLayers(): Promise<Buffer[]> {
  const dir = (name: string, extra: Partial<TarEntry> = {}): TarEntry => ({
    name,
    type: 'directory',
    mtime: t1,
    ...extra,
  });
  const lower: TarEntry[] = [
    dir('bin/'),
    { name: 'bin/tool', content: 'tool\n', mode: 0o755 },
    { name: 'bin/t1', type: 'link', linkname: 'bin/tool' },
    { name: 'bin/t2', type: 'link', linkname: '/bin/tool' },
    { name: 'bin/su', content: 'su\n', mode: 0o4755 },
    { name: 'bin/wall', content: 'wall\n', mode: 0o2755, gid: 5 },
    {
      name: 'bin/ping',
      content: 'ping\n',
      mode: 0o755,
      uid: 1000,
      gid: 1000,
      xattrs: { 'security.capability': capability, 'user.raw': Buffer.from([0, 0xff, 0x80, 0x0a]) },
    },
    dir('dev/'),
    { name: 'dev/null', type: 'character-device', devmajor: 1, devminor: 3, mode: 0o666 },
    { name: 'dev/sda', type: 'block-device', devmajor: 8, devminor: 0, mode: 0o660, gid: 6 },
    { name: 'dev/big', type: 'character-device', devmajor: 300, devminor: 70000, mode: 0o600 },
    dir('run/'),
    { name: 'run/fifo', type: 'fifo', mode: 0o620, uid: 3, gid: 4 },
    dir('tmp/', { mode: 0o1777 }),
    dir('home/'),
    dir('home/app/', { mode: 0o700, uid: 1000, gid: 1000 }),
    { name: 'lib', type: 'symlink', linkname: 'usr/lib' },
    { name: 'lib64', type: 'symlink', linkname: '/usr/lib' },
    dir('usr/'),
    dir('usr/lib/'),
    { name: 'usr/lib/up', type: 'symlink', linkname: '../lib' },
    dir('d/', { mode: 0o750, uid: 7, gid: 8 }),
    { name: 'd/f', content: 'f' },
    dir('a/'),
    dir('a/old/'),
    { name: 'a/old/f', content: 'old' },
    { name: 'a/keep', content: 'keep' },
    dir('b/'),
    { name: 'b/x', content: 'x' },
    dir('c/'),
    { name: 'c/y', content: 'y' },
  ];
  // Sparse files, as GNU tar writes them (PAX 0.1 and 1.0).
  lower.push(dir('sparse/'), ...sparseEntries('sparse').entries);
  for (const format of ['pax', 'gnu']) {
    const gnuLong = format === 'gnu';
    const file = `${format}/${longDir}/${'f'.repeat(120)}`;
    lower.push(
      dir(`${format}/`),
      dir(`${format}/${'d'.repeat(90)}/`),
      dir(`${format}/${longDir}/`),
      { name: file, content: 'long', gnuLong },
      { name: `${format}/${longDir}/${'s'.repeat(110)}`, type: 'symlink', linkname: `/${file}`, gnuLong },
      { name: `${format}/${longDir}/${'h'.repeat(110)}`, type: 'link', linkname: file, gnuLong },
    );
  }

  const upper: TarEntry[] = [
    dir('a/'),
    { name: 'a/.wh.old' },
    dir('a/old/'),
    { name: 'a/old/h', content: 'h' },
    dir('b/'),
    { name: 'b/.wh..wh..opq' },
    { name: 'b/new', content: 'new' },
    { name: '.wh.c' },
    dir('bin/'),
    { name: 'bin/t1', content: 'replaced\n', mode: 0o755 },
  ];
  const garbage = Buffer.from('trailing data after the end blocks\n');
  return [await makeTar(lower), Buffer.concat([await makeTar(upper), garbage])];
}

/**
 * The slow check: MINIDOCK_COMPARE_LAYOUT=DIR:TAG names an OCI layout (the
 * Debian image of fixtures/debian.sh, or the real-files image of
 * bench/unpack.sh) to compare as well. Not part of npm test.
 */
function slowLayout(): { layout: string; tag: string } | undefined {
  const spec = process.env.MINIDOCK_COMPARE_LAYOUT;
  if (spec === undefined || spec === '') return undefined;
  const colon = spec.lastIndexOf(':');
  return colon < 0 ? { layout: spec, tag: 'latest' } : { layout: spec.slice(0, colon), tag: spec.slice(colon + 1) };
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

  /**
   * Pulls the layout's image with minidock, unpacks it with umoci, stacks
   * minidock's layers read-only with overlay and lists both trees. Also
   * returns the pull's stderr.
   */
  async function bothTrees(
    name: string,
    layout: string,
    tag = 'latest',
  ): Promise<{ theirs: Map<string, TreeEntry>; ours: Map<string, TreeEntry>; stderr: string }> {
    await registry.push(layout, `library/${name}`, tag, { sourceTag: tag });
    const ref = `${registry.host}/library/${name}:${tag}`;
    const pulled = await runCli(['pull', ref], { root });
    assert.equal(pulled.code, 0, pulled.stderr);

    const bundle = join(work, `${name}-bundle`);
    await execFileAsync(umociBinary, ['unpack', '--image', `${layout}:${tag}`, bundle], { maxBuffer: 64 << 20 });

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
    try {
      const theirs = await walkTree(join(bundle, 'rootfs'));
      const ours = await walkTree(mnt);
      return { theirs, ours, stderr: pulled.stderr };
    } finally {
      await execFileAsync('umount', [mnt]);
    }
  }

  function assertSame(theirs: Map<string, TreeEntry>, ours: Map<string, TreeEntry>): void {
    const diffs = differences(theirs, ours);
    assert.deepEqual(diffs, [], `${diffs.length} differences:\n${diffs.slice(0, 200).join('\n')}`);
  }

  for (const name of ['busybox', 'layered']) {
    test(`${name}: the stacked layers show umoci's rootfs, path for path`, async () => {
      const { theirs, ours } = await bothTrees(name, join(layouts, name));

      assert.ok(theirs.get('bin/busybox')?.type === 'file', 'umoci unpacked bin/busybox');
      assert.ok(theirs.size > 100, `umoci's rootfs has ${theirs.size} paths`);
      if (name === 'layered') {
        // The comparison covers a whiteout and a hard link.
        assert.equal(theirs.get('data/old'), undefined);
        assert.equal(theirs.get('data/hard1')?.hardLinks, 'data/hard2');
      }
      assertSame(theirs, ours);
    });
  }

  test('a crafted image: devices, xattrs, long names, links and whiteouts as umoci has them', async () => {
    const layout = join(work, 'crafted-layout');
    await writeLayout(layout, await craftedLayers());
    const { theirs, ours, stderr } = await bothTrees('crafted', layout);

    // What the comparison must cover, as umoci unpacked it.
    assert.equal(theirs.get('dev/sda')?.type, 'block device');
    assert.equal(theirs.get('dev/big')?.type, 'char device');
    assert.equal(theirs.get('run/fifo')?.type, 'fifo');
    assert.match(theirs.get('bin/ping')?.xattrs ?? '', new RegExp(`security.capability=${capability.toString('hex')}`));
    assert.equal(theirs.get('bin/su')?.mode, '4755');
    assert.equal(theirs.get('bin/t2')?.hardLinks, 'bin/tool');
    assert.equal(theirs.get('bin/t1')?.hardLinks, undefined);
    assert.equal(theirs.get('c'), undefined);
    assert.deepEqual(
      [...theirs.keys()].filter((p) => p.startsWith('a/') || p.startsWith('b/')),
      ['a/keep', 'a/old', 'a/old/h', 'b/new'],
    );
    assert.equal(theirs.get(`gnu/${longDir}/${'s'.repeat(110)}`)?.target, `/gnu/${longDir}/${'f'.repeat(120)}`);
    assert.equal(theirs.get('sparse/b')?.size, 2_000_003);
    assertSame(theirs, ours);
    assert.match(stderr, /ignore \d+ bytes of trailing data/);
  });

  const slow = slowLayout();
  test(
    'the layout named by MINIDOCK_COMPARE_LAYOUT, path for path',
    { skip: slow ? false : 'a slow check: set MINIDOCK_COMPARE_LAYOUT=DIR:TAG (see README)' },
    async () => {
      const { theirs, ours } = await bothTrees('slow', slow!.layout, slow!.tag);
      assert.ok(theirs.size > 1000, `umoci's rootfs has ${theirs.size} paths`);
      assertSame(theirs, ours);
    },
  );
});
