/**
 * Layers applied by applyLayer, stacked by a real overlayfs mount, seen
 * from the merged view: what a container sees, which is what the image's
 * layers mean. Each case builds its layers in code.
 *
 * The mounts are read-only, in a private directory, and undone after each
 * case.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Readable } from 'node:stream';
import { after, before, describe, it } from 'node:test';
import type { Logger } from '../../src/log.js';
import { lgetxattr, splitDev } from '../../src/sys/index.js';
import { applyLayer } from '../../src/unpack/index.js';
import { makeTar, sparseEntries, type TarEntry } from '../helpers/make-tar.js';

function whyNot(): string | false {
  if (process.getuid?.() !== 0) return 'needs root (chown, mknod, trusted.* xattrs, mount)';
  if (!fs.readFileSync('/proc/filesystems', 'utf8').includes('\toverlay\n')) {
    return 'needs overlayfs in the kernel';
  }
  return false;
}

let base: string;
let count = 0;

before(() => {
  base = fs.mkdtempSync(path.join(os.tmpdir(), 'minidock-overlay-'));
});

after(() => {
  fs.rmSync(base, { recursive: true, force: true });
});

interface Layer {
  entries: TarEntry[];
  /** Bytes appended after the tar's end blocks. */
  trailing?: Buffer;
}

/**
 * Applies layers (bottom first) each to its own directory, mounts them as
 * overlay lower directories, runs check on the merged view, and unmounts.
 * Also checks that the merged view shows no whiteout: no ".wh." name and
 * no 0/0 character device.
 */
async function withMerged(
  layers: Array<TarEntry[] | Layer>,
  check: (merged: string) => void,
  logger?: Logger,
): Promise<void> {
  const dir = path.join(base, `case-${++count}`);
  const lowers: string[] = [];
  for (const [i, l] of layers.entries()) {
    const layer: Layer = Array.isArray(l) ? { entries: l } : l;
    const lower = path.join(dir, `layer-${i}`);
    fs.mkdirSync(lower, { recursive: true });
    const tar = await makeTar(layer.entries);
    const bytes = layer.trailing ? Buffer.concat([tar, layer.trailing]) : tar;
    await applyLayer(Readable.from([bytes]), lower, { logger });
    lowers.unshift(lower);
  }
  // Overlay wants two lower directories at least when there is no upper.
  if (lowers.length < 2) {
    lowers.push(path.join(dir, 'empty'));
    fs.mkdirSync(lowers[1]);
  }

  const merged = path.join(dir, 'merged');
  fs.mkdirSync(merged);
  const options = `ro,lowerdir=${lowers.join(':')}`;
  const mount = spawnSync('mount', ['-t', 'overlay', 'overlay', '-o', options, merged], {
    encoding: 'utf8',
  });
  assert.equal(mount.status, 0, `mount overlay: ${mount.stderr}`);
  try {
    assertNoWhiteouts(merged);
    check(merged);
  } finally {
    const umount = spawnSync('umount', [merged], { encoding: 'utf8' });
    assert.equal(umount.status, 0, umount.stderr);
  }
}

function assertNoWhiteouts(top: string): void {
  const walk = (dir: string) => {
    for (const name of fs.readdirSync(dir)) {
      const p = path.join(dir, name);
      assert.ok(!name.startsWith('.wh.'), `whiteout name visible: ${path.relative(top, p)}`);
      const st = fs.lstatSync(p);
      if (st.isCharacterDevice()) {
        assert.notEqual(st.rdev, 0, `whiteout device visible: ${path.relative(top, p)}`);
      }
      if (st.isDirectory()) walk(p);
    }
  };
  walk(top);
}

/** Every order of items. */
function permutations<T>(items: T[]): T[][] {
  if (items.length <= 1) return [items];
  return items.flatMap((x, i) =>
    permutations([...items.slice(0, i), ...items.slice(i + 1)]).map((rest) => [x, ...rest]),
  );
}

const names = (entries: TarEntry[]) => entries.map((e) => e.name).join(', ');
const ls = (merged: string, p: string) => fs.readdirSync(path.join(merged, p)).sort();
const read = (merged: string, p: string) => fs.readFileSync(path.join(merged, p), 'utf8');

const t1 = new Date('2021-03-04T05:06:07Z');
const t2 = new Date('2022-08-09T10:11:12Z');

// The lower layer of the whiteout cases (issue 4's example).
const lowerA: TarEntry[] = [
  { name: 'a/', type: 'directory' },
  { name: 'a/old/', type: 'directory' },
  { name: 'a/old/f', content: 'old' },
  { name: 'a/keep', content: 'keep' },
  { name: 'other', content: 'other' },
];

describe('applied layers seen through overlayfs', { skip: whyNot() }, () => {
  describe('whiteouts and opaque directories', () => {
    const opaqueCases = [
      ...permutations<TarEntry>([{ name: 'a/.wh..wh..opq' }, { name: 'a/new/g', content: 'g' }]),
      ...permutations<TarEntry>([
        { name: 'a/', type: 'directory' },
        { name: 'a/.wh..wh..opq' },
        { name: 'a/new/g', content: 'g' },
      ]),
    ];
    for (const upper of opaqueCases) {
      it(`an opaque marker hides the lower directory's content (${names(upper)})`, () =>
        withMerged([lowerA, upper], (m) => {
          assert.deepEqual(ls(m, '.'), ['a', 'other']);
          assert.deepEqual(ls(m, 'a'), ['new']);
          assert.deepEqual(ls(m, 'a/new'), ['g']);
          assert.equal(read(m, 'a/new/g'), 'g');
        }));
    }

    const recreateCases = [
      ...permutations<TarEntry>([{ name: 'a/.wh.old' }, { name: 'a/old/h', content: 'h' }]),
      ...permutations<TarEntry>([
        { name: 'a/.wh.old' },
        { name: 'a/old/', type: 'directory', mode: 0o700 },
        { name: 'a/old/h', content: 'h' },
      ]),
    ];
    for (const upper of recreateCases) {
      it(`a whited-out directory made again holds only the new entries (${names(upper)})`, () =>
        withMerged([lowerA, upper], (m) => {
          assert.deepEqual(ls(m, 'a'), ['keep', 'old']);
          assert.equal(read(m, 'a/keep'), 'keep');
          assert.deepEqual(ls(m, 'a/old'), ['h']);
          assert.equal(read(m, 'a/old/h'), 'h');
          if (upper.some((e) => e.name === 'a/old/')) {
            assert.equal(fs.lstatSync(path.join(m, 'a/old')).mode & 0o7777, 0o700);
          }
        }));
    }

    it('an opaque marker alone leaves its directory there and empty', () =>
      withMerged([lowerA, [{ name: 'a/.wh..wh..opq' }]], (m) => {
        assert.deepEqual(ls(m, '.'), ['a', 'other']);
        assert.ok(fs.lstatSync(path.join(m, 'a')).isDirectory());
        assert.deepEqual(ls(m, 'a'), []);
      }));

    it('whiteouts delete a file, a whole tree, and a file again made', () =>
      withMerged(
        [
          lowerA,
          [{ name: 'a/.wh.keep' }, { name: '.wh.other' }],
          [{ name: 'other', content: 'back' }, { name: '.wh.a' }],
        ],
        (m) => {
          assert.deepEqual(ls(m, '.'), ['other']);
          assert.equal(read(m, 'other'), 'back');
        },
      ));

    it('a whiteout over a name that was never there hides nothing else', () =>
      withMerged([lowerA, [{ name: 'a/.wh.never' }]], (m) => {
        assert.deepEqual(ls(m, 'a'), ['keep', 'old']);
      }));

    // Overlayfs lists an opaque directory as a plain one, so a whiteout
    // device left in it would show as a name that cannot be opened.
    const opaqueWithWhiteouts = permutations<TarEntry>([
      { name: 'a/.wh..wh..opq' },
      { name: 'a/.wh.keep' },
      { name: 'a/new/.wh.gone' },
      { name: 'a/new/g', content: 'g' },
    ]);
    for (const upper of opaqueWithWhiteouts) {
      it(`whiteouts inside an opaque directory leave no trace (${names(upper)})`, () =>
        withMerged([lowerA, upper], (m) => {
          assert.deepEqual(ls(m, 'a'), ['new']);
          assert.deepEqual(ls(m, 'a/new'), ['g']);
        }));
    }
  });

  describe('hard links and symlinks', () => {
    const group: TarEntry[] = [
      // A link before its target, a link to a link, and plain links.
      { name: 'bin/sh', type: 'link', linkname: 'bin/busybox' },
      { name: 'bin/busybox', content: 'busybox', mode: 0o755 },
      { name: 'bin/ls', type: 'link', linkname: '/bin/busybox' },
      { name: 'bin/cat', type: 'link', linkname: './bin/sh' },
      { name: 'sbin/init', type: 'link', linkname: 'bin/ls' },
    ];

    it('links a group to one file, a target later in the tar included', () =>
      withMerged([group], (m) => {
        const ino = fs.lstatSync(path.join(m, 'bin/busybox')).ino;
        for (const p of ['bin/sh', 'bin/ls', 'bin/cat', 'sbin/init']) {
          assert.equal(fs.lstatSync(path.join(m, p)).ino, ino, p);
          assert.equal(read(m, p), 'busybox', p);
        }
        assert.equal(fs.lstatSync(path.join(m, 'bin/busybox')).nlink, 5);
      }));

    it('a later layer replacing or deleting one name of a group leaves the others', () =>
      withMerged(
        [group, [{ name: 'bin/sh', content: 'dash', mode: 0o755 }, { name: 'bin/.wh.cat' }]],
        (m) => {
          assert.deepEqual(ls(m, 'bin'), ['busybox', 'ls', 'sh']);
          assert.equal(read(m, 'bin/sh'), 'dash');
          const bb = fs.lstatSync(path.join(m, 'bin/busybox'));
          assert.notEqual(fs.lstatSync(path.join(m, 'bin/sh')).ino, bb.ino);
          for (const p of ['bin/busybox', 'bin/ls', 'sbin/init']) {
            assert.equal(read(m, p), 'busybox', p);
            assert.equal(fs.lstatSync(path.join(m, p)).ino, bb.ino, p);
          }
        },
      ));

    it('keeps absolute and relative symlink targets as written', () =>
      withMerged(
        [
          [
            { name: 'usr/lib/libc.so.6', content: 'elf' },
            { name: 'lib', type: 'symlink', linkname: 'usr/lib' },
            { name: 'lib64', type: 'symlink', linkname: '/usr/lib' },
            { name: 'usr/bin/lib', type: 'symlink', linkname: '../lib' },
            { name: 'etc/mtab', type: 'symlink', linkname: '../proc/self/mounts' },
            { name: 'dangling', type: 'symlink', linkname: '/nonexistent/../etc/shadow' },
          ],
        ],
        (m) => {
          const link = (p: string) => fs.readlinkSync(path.join(m, p));
          assert.equal(link('lib'), 'usr/lib');
          assert.equal(link('lib64'), '/usr/lib');
          assert.equal(link('usr/bin/lib'), '../lib');
          assert.equal(link('etc/mtab'), '../proc/self/mounts');
          assert.equal(link('dangling'), '/nonexistent/../etc/shadow');
          assert.equal(read(m, 'usr/bin/lib/libc.so.6'), 'elf');
        },
      ));
  });

  describe('directories and metadata', () => {
    it("creates missing parents 0755 root; a directory's own later entry sets it", () =>
      withMerged(
        [
          [
            { name: 'x/y/z', content: 'z', mtime: t2 },
            { name: 'd/f', content: 'f', mtime: t2 },
            { name: 'd/sub/g', content: 'g', mtime: t2 },
            { name: 'd/', type: 'directory', mode: 0o750, uid: 7, gid: 8, mtime: t1 },
          ],
        ],
        (m) => {
          for (const p of ['x', 'x/y', 'd/sub']) {
            const st = fs.lstatSync(path.join(m, p));
            assert.equal(st.mode, 0o040755, p);
            assert.equal(`${st.uid}:${st.gid}`, '0:0', p);
          }
          const d = fs.lstatSync(path.join(m, 'd'));
          assert.equal(d.mode, 0o040750);
          assert.equal(`${d.uid}:${d.gid}`, '7:8');
          // Set after its children were written, or their creation would
          // have moved it.
          assert.equal(d.mtimeMs, t1.getTime());
          assert.equal(fs.lstatSync(path.join(m, 'd/f')).mtimeMs, t2.getTime());
        },
      ));

    it('keeps owners, special mode bits, mtimes, fifos and devices', () =>
      withMerged(
        [
          [
            { name: 'bin/su', content: 'x', mode: 0o4755, uid: 0, gid: 0, mtime: t1 },
            { name: 'bin/wall', content: 'x', mode: 0o2755, uid: 0, gid: 5 },
            { name: 'bin/mine', content: 'x', mode: 0o6711, uid: 1000, gid: 1001 },
            { name: 'tmp/', type: 'directory', mode: 0o1777 },
            { name: 'home/app/', type: 'directory', mode: 0o700, uid: 1000, gid: 1000 },
            { name: 'run/fifo', type: 'fifo', mode: 0o620, uid: 3, gid: 4, mtime: t2 },
            { name: 'dev/null', type: 'character-device', devmajor: 1, devminor: 3, mode: 0o666 },
            { name: 'dev/sda', type: 'block-device', devmajor: 8, devminor: 0, gid: 6, mode: 0o660 },
            { name: 'dev/big', type: 'character-device', devmajor: 300, devminor: 70000 },
          ],
        ],
        (m) => {
          const st = (p: string) => fs.lstatSync(path.join(m, p));
          assert.equal(st('bin/su').mode, 0o104755);
          assert.equal(st('bin/su').mtimeMs, t1.getTime());
          assert.equal(st('bin/wall').mode, 0o102755);
          assert.equal(st('bin/wall').gid, 5);
          assert.equal(st('bin/mine').mode, 0o106711);
          assert.equal(`${st('bin/mine').uid}:${st('bin/mine').gid}`, '1000:1001');
          assert.equal(st('tmp').mode, 0o041777);
          assert.equal(`${st('home/app').uid}:${st('home/app').mode.toString(8)}`, '1000:40700');
          assert.ok(st('run/fifo').isFIFO());
          assert.equal(st('run/fifo').mode & 0o7777, 0o620);
          assert.equal(`${st('run/fifo').uid}:${st('run/fifo').gid}`, '3:4');
          assert.equal(st('run/fifo').mtimeMs, t2.getTime());
          assert.ok(st('dev/null').isCharacterDevice());
          assert.deepEqual(splitDev(st('dev/null').rdev), { major: 1, minor: 3 });
          assert.equal(st('dev/null').mode & 0o7777, 0o666);
          assert.ok(st('dev/sda').isBlockDevice());
          assert.deepEqual(splitDev(st('dev/sda').rdev), { major: 8, minor: 0 });
          assert.equal(st('dev/sda').gid, 6);
          assert.deepEqual(splitDev(st('dev/big').rdev), { major: 300, minor: 70000 });
        },
      ));

    it('keeps xattrs byte-exact, a capability on a chowned file included', () => {
      // vfs_cap_data revision 2: magic 0x02000000 | effective, then
      // permitted and inheritable words; CAP_NET_RAW (13) and
      // CAP_SYS_ADMIN (21) give bytes above 0x7f and NULs.
      const cap = Buffer.alloc(20);
      cap.writeUInt32LE(0x02000001, 0);
      cap.writeUInt32LE(((1 << 13) | (1 << 21) | (1 << 31)) >>> 0, 4);
      assert.ok(cap.includes(0x80) && cap.includes(0x00));
      const binary = Buffer.from([0x00, 0xff, 0x80, 0xc3, 0x28, 0x0a, 0x3d, 0x00]);
      return withMerged(
        [
          [
            {
              name: 'bin/ping',
              content: 'x',
              mode: 0o755,
              uid: 1000,
              gid: 1000,
              xattrs: { 'security.capability': cap, 'user.raw': binary },
            },
            { name: 'etc/', type: 'directory', xattrs: { 'user.dir': Buffer.from([0xfe, 0]) } },
          ],
        ],
        (m) => {
          const ping = path.join(m, 'bin/ping');
          assert.deepEqual(lgetxattr(ping, 'security.capability'), cap);
          assert.deepEqual(lgetxattr(ping, 'user.raw'), binary);
          assert.equal(`${fs.lstatSync(ping).uid}:${fs.lstatSync(ping).gid}`, '1000:1000');
          assert.deepEqual(lgetxattr(path.join(m, 'etc'), 'user.dir'), Buffer.from([0xfe, 0]));
        },
      );
    });
  });

  describe('tar formats', () => {
    const longDir = `${'d'.repeat(90)}/${'e'.repeat(90)}`;
    const longFile = `${longDir}/${'f'.repeat(120)}`;

    for (const format of ['PAX', 'GNU'] as const) {
      it(`reads ${format} long names and link names`, () => {
        const gnuLong = format === 'GNU';
        return withMerged(
          [
            [
              { name: `${format}/${longFile}`, content: 'long', gnuLong },
              {
                name: `${format}/${longDir}/${'s'.repeat(110)}`,
                type: 'symlink',
                linkname: `/${format}/${longFile}`,
                gnuLong,
              },
              {
                name: `${format}/${longDir}/${'h'.repeat(110)}`,
                type: 'link',
                linkname: `${format}/${longFile}`,
                gnuLong,
              },
            ],
          ],
          (m) => {
            const dir = path.join(m, format, longDir);
            assert.deepEqual(fs.readdirSync(dir).sort(), ['f', 'h', 's'].map((c) => c.repeat(c === 'f' ? 120 : 110)));
            assert.equal(read(m, `${format}/${longFile}`), 'long');
            assert.equal(fs.readlinkSync(path.join(dir, 's'.repeat(110))), `/${format}/${longFile}`);
            const h = fs.lstatSync(path.join(dir, 'h'.repeat(110)));
            assert.equal(h.ino, fs.lstatSync(path.join(m, format, longFile)).ino);
          },
        );
      });
    }

    it('writes sparse files (PAX formats 0.1 and 1.0) with their holes', () => {
      const { entries, files } = sparseEntries('sparse');
      return withMerged([entries], (m) => {
        assert.deepEqual(ls(m, 'sparse'), ['a', 'b']);
        for (const [name, bytes] of files) {
          assert.ok(fs.readFileSync(path.join(m, name)).equals(bytes), name);
          assert.ok(fs.statSync(path.join(m, name)).blocks < 64, `${name}: holes stay holes`);
        }
      });
    });

    it('ignores trailing data after the end blocks, with a warning', async () => {
      const warnings: string[] = [];
      const logger: Logger = { debug() {}, info() {}, warn: (msg) => warnings.push(msg) };
      const garbage = Buffer.from('not a tar header, just bytes after the end\n'.repeat(40));
      await withMerged(
        [
          { entries: [{ name: 'a', content: 'a' }], trailing: garbage },
          { entries: [{ name: 'b', content: 'b' }], trailing: Buffer.alloc(9216) },
        ],
        (m) => {
          assert.deepEqual(ls(m, '.'), ['a', 'b']);
          assert.equal(read(m, 'a'), 'a');
        },
        logger,
      );
      // Zero padding (as tar pads to its record size) is not worth a word.
      assert.equal(warnings.length, 1, warnings.join('\n'));
      assert.match(warnings[0], new RegExp(`ignore ${garbage.length} bytes of trailing data`));
    });
  });
});
