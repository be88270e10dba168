import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Readable } from 'node:stream';
import { after, before, describe, it } from 'node:test';
import { MinidockError, NotImplementedError, UnsafePathError } from '../../src/errors.js';
import type { Logger } from '../../src/log.js';
import { lgetxattr, llistxattr, splitDev } from '../../src/sys/index.js';
import { applyLayer } from '../../src/unpack/index.js';
import { makeTar, setChecksum, sparse10, type TarEntry } from '../helpers/make-tar.js';

const isRoot = process.getuid?.() === 0;
const needRoot = isRoot ? false : 'needs root (chown, mknod, trusted.* xattrs)';

const S_IFCHR = 0o020000;
const S_IFBLK = 0o060000;
const S_IFIFO = 0o010000;

let base: string;
let count = 0;

before(() => {
  base = fs.mkdtempSync(path.join(os.tmpdir(), 'minidock-unpack-'));
});

after(() => {
  fs.rmSync(base, { recursive: true, force: true });
});

/** A fresh case directory: case/layer (empty) and case/sentinel (files). */
function newCase(): { root: string; layer: string; sentinel: string } {
  const root = path.join(base, `case-${++count}`);
  const layer = path.join(root, 'layer');
  const sentinel = path.join(root, 'sentinel');
  fs.mkdirSync(layer, { recursive: true });
  fs.mkdirSync(sentinel);
  fs.writeFileSync(path.join(sentinel, 'f'), 'original\n');
  fs.writeFileSync(path.join(sentinel, 'passwd'), 'root:x:0:0::/root:/bin/sh\n');
  fs.mkdirSync(path.join(sentinel, 'sub'));
  return { root, layer, sentinel };
}

/**
 * Everything under root except the layer directory: names, types, modes,
 * owners, sizes, mtimes, link counts, contents and xattrs.
 */
function snapshot(root: string, skip: string): string[] {
  const out: string[] = [];
  const walk = (dir: string) => {
    for (const name of fs.readdirSync(dir).sort()) {
      const p = path.join(dir, name);
      if (p === skip) continue;
      const st = fs.lstatSync(p);
      let extra = '';
      if (st.isFile()) extra = createHash('sha256').update(fs.readFileSync(p)).digest('hex');
      if (st.isSymbolicLink()) extra = fs.readlinkSync(p);
      const xattrs = llistxattr(p).join(',');
      out.push(
        `${path.relative(root, p)} ${st.mode.toString(8)} ${st.uid}:${st.gid} ${st.size} ` +
          `${st.mtimeMs} ${st.nlink} ${extra} ${xattrs}`,
      );
      if (st.isDirectory()) walk(p);
    }
  };
  const st = fs.lstatSync(root);
  out.push(`. ${st.mode.toString(8)} ${st.mtimeMs}`);
  walk(root);
  return out;
}

async function apply(entries: TarEntry[], layer: string, logger?: Logger) {
  return applyLayer(Readable.from([await makeTar(entries)]), layer, { logger });
}

/** Applies a hostile layer; asserts UnsafePathError and an untouched outside. */
async function assertRefused(make: (c: { sentinel: string }) => TarEntry[]): Promise<void> {
  const c = newCase();
  const entries = make(c);
  const before = snapshot(c.root, c.layer);
  const parentBefore = snapshot(path.dirname(c.root), c.root).filter((l) => !l.startsWith('case-'));

  await assert.rejects(apply(entries, c.layer), (err: unknown) => {
    assert.ok(err instanceof UnsafePathError, `want UnsafePathError, got ${String(err)}`);
    assert.equal((err as UnsafePathError).code, 'ERR_UNSAFE_PATH');
    return true;
  });

  assert.deepEqual(snapshot(c.root, c.layer), before);
  const parentAfter = snapshot(path.dirname(c.root), c.root).filter((l) => !l.startsWith('case-'));
  assert.deepEqual(parentAfter, parentBefore);
}

const t1 = new Date('2021-03-04T05:06:07Z');
const t2 = new Date('2022-08-09T10:11:12Z');

describe('applyLayer', { skip: needRoot }, () => {
  it('writes a regular file with its content, mode, owner and mtime', async () => {
    const { layer } = newCase();
    const stats = await apply(
      [{ name: 'etc/motd', content: 'hello\n', mode: 0o640, uid: 1000, gid: 1001, mtime: t1 }],
      layer,
    );

    const p = path.join(layer, 'etc/motd');
    const st = fs.lstatSync(p);
    assert.equal(fs.readFileSync(p, 'utf8'), 'hello\n');
    assert.equal(st.mode, 0o100640);
    assert.equal(st.uid, 1000);
    assert.equal(st.gid, 1001);
    assert.equal(st.mtimeMs, t1.getTime());
    assert.deepEqual(stats, { entries: 1, bytes: 6 });
  });

  it('keeps setuid, setgid and sticky bits on a file owned by a user', async () => {
    const { layer } = newCase();
    await apply(
      [
        { name: 'bin/su', content: 'x', mode: 0o4755, uid: 1000, gid: 1000 },
        { name: 'bin/wall', content: 'x', mode: 0o2755, uid: 0, gid: 5 },
        { name: 'tmp/', type: 'directory', mode: 0o1777 },
      ],
      layer,
    );

    assert.equal(fs.lstatSync(path.join(layer, 'bin/su')).mode & 0o7777, 0o4755);
    assert.equal(fs.lstatSync(path.join(layer, 'bin/wall')).mode & 0o7777, 0o2755);
    assert.equal(fs.lstatSync(path.join(layer, 'tmp')).mode, 0o041777);
  });

  it('streams a large file to disk byte for byte', async () => {
    const { layer } = newCase();
    const big = Buffer.alloc(5 * 1024 * 1024 + 123);
    for (let i = 0; i < big.length; i++) big[i] = (i * 7 + (i >> 13)) & 0xff;
    const stats = await apply([{ name: 'big.bin', content: big }], layer);

    const got = fs.readFileSync(path.join(layer, 'big.bin'));
    assert.equal(got.length, big.length);
    assert.ok(got.equals(big));
    assert.equal(stats.bytes, big.length);
  });

  it('creates missing parents 0755 root and sets directory entries last', async () => {
    const { layer } = newCase();
    await apply(
      [
        { name: 'd/', type: 'directory', mode: 0o750, uid: 7, gid: 8, mtime: t1 },
        { name: 'd/f', content: 'x', mtime: t2 },
        { name: 'd/sub/g', content: 'y' },
        { name: 'x/y/z', content: 'z' },
      ],
      layer,
    );

    const d = fs.lstatSync(path.join(layer, 'd'));
    assert.equal(d.mode, 0o040750);
    assert.equal(d.uid, 7);
    assert.equal(d.gid, 8);
    assert.equal(d.mtimeMs, t1.getTime(), 'directory mtime survives its children');
    for (const p of ['x', 'x/y', 'd/sub']) {
      const st = fs.lstatSync(path.join(layer, p));
      assert.equal(st.mode, 0o040755, p);
      assert.equal(st.uid, 0, p);
      assert.equal(st.gid, 0, p);
    }
  });

  it('makes absolute names relative to the layer', async () => {
    const { layer } = newCase();
    await apply([{ name: '/abs/x', content: 'a' }, { name: './rel/y', content: 'b' }], layer);

    assert.equal(fs.readFileSync(path.join(layer, 'abs/x'), 'utf8'), 'a');
    assert.equal(fs.readFileSync(path.join(layer, 'rel/y'), 'utf8'), 'b');
  });

  it('keeps symlink targets as written, with owner and mtime', async () => {
    const { layer } = newCase();
    await apply(
      [
        { name: 'usr/lib/libc.so', content: 'elf' },
        { name: 'lib', type: 'symlink', linkname: '/usr/lib', uid: 3, gid: 4, mtime: t1 },
        { name: 'usr/bin/up', type: 'symlink', linkname: '../lib' },
        { name: 'dangling', type: 'symlink', linkname: '/nonexistent/../etc/shadow' },
      ],
      layer,
    );

    const st = fs.lstatSync(path.join(layer, 'lib'));
    assert.ok(st.isSymbolicLink());
    assert.equal(fs.readlinkSync(path.join(layer, 'lib')), '/usr/lib');
    assert.equal(st.uid, 3);
    assert.equal(st.gid, 4);
    assert.equal(st.mtimeMs, t1.getTime());
    assert.equal(fs.readlinkSync(path.join(layer, 'usr/bin/up')), '../lib');
    assert.equal(fs.readlinkSync(path.join(layer, 'dangling')), '/nonexistent/../etc/shadow');
  });

  it('links hard links to the same inode', async () => {
    const { layer } = newCase();
    await apply(
      [
        { name: 'bin/busybox', content: 'bb', mode: 0o755 },
        { name: 'bin/sh', type: 'link', linkname: 'bin/busybox' },
        { name: 'sbin/init', type: 'link', linkname: '/bin/busybox' },
      ],
      layer,
    );

    const a = fs.lstatSync(path.join(layer, 'bin/busybox'));
    const b = fs.lstatSync(path.join(layer, 'bin/sh'));
    const c = fs.lstatSync(path.join(layer, 'sbin/init'));
    assert.equal(a.nlink, 3);
    assert.equal(b.ino, a.ino);
    assert.equal(c.ino, a.ino);
  });

  it('creates character and block devices and fifos', async () => {
    const { layer } = newCase();
    await apply(
      [
        { name: 'dev/null', type: 'character-device', devmajor: 1, devminor: 3, mode: 0o666 },
        { name: 'dev/loop0', type: 'block-device', devmajor: 7, devminor: 0, mode: 0o660, gid: 6 },
        { name: 'dev/big', type: 'character-device', devmajor: 300, devminor: 70000, mode: 0o600 },
        { name: 'run/fifo', type: 'fifo', mode: 0o620 },
      ],
      layer,
    );

    const nul = fs.lstatSync(path.join(layer, 'dev/null'));
    assert.equal(nul.mode, S_IFCHR | 0o666);
    assert.deepEqual(splitDev(nul.rdev), { major: 1, minor: 3 });
    const loop = fs.lstatSync(path.join(layer, 'dev/loop0'));
    assert.equal(loop.mode, S_IFBLK | 0o660);
    assert.equal(loop.gid, 6);
    assert.deepEqual(splitDev(loop.rdev), { major: 7, minor: 0 });
    const big = fs.lstatSync(path.join(layer, 'dev/big'));
    assert.deepEqual(splitDev(big.rdev), { major: 300, minor: 70000 });
    assert.equal(fs.lstatSync(path.join(layer, 'run/fifo')).mode, S_IFIFO | 0o620);
  });

  it('sets xattrs byte-exact, and security.capability survives the chown', async () => {
    const { layer } = newCase();
    const binary = Buffer.from([0x00, 0xff, 0x80, 0xc3, 0x28, 0x7f, 0xfe]);
    // vfs_cap_data revision 2, effective, permitted CAP_SETUID (bit 7).
    const cap = Buffer.alloc(20);
    cap.writeUInt32LE(0x02000001, 0);
    cap.writeUInt32LE(1 << 7, 4);
    await apply(
      [
        { name: 'f', content: 'x', xattrs: { 'user.bin': binary, 'user.text': 'héllo' } },
        {
          name: 'ping',
          content: 'x',
          uid: 1000,
          gid: 1000,
          mode: 0o755,
          xattrs: { 'security.capability': cap },
        },
        { name: 'd/', type: 'directory', xattrs: { 'user.dir': Buffer.from([0x99]) } },
      ],
      layer,
    );

    assert.deepEqual(lgetxattr(path.join(layer, 'f'), 'user.bin'), binary);
    assert.equal(lgetxattr(path.join(layer, 'f'), 'user.text')?.toString('utf8'), 'héllo');
    assert.deepEqual(lgetxattr(path.join(layer, 'ping'), 'security.capability'), cap);
    assert.equal(fs.lstatSync(path.join(layer, 'ping')).uid, 1000);
    assert.deepEqual(lgetxattr(path.join(layer, 'd'), 'user.dir'), Buffer.from([0x99]));
  });

  it('ignores trusted.overlay.* xattrs from the tar, with a warning', async () => {
    const { layer } = newCase();
    const warnings: string[] = [];
    const logger: Logger = { debug() {}, info() {}, warn: (m) => warnings.push(m) };
    await apply(
      [{ name: 'd/', type: 'directory', xattrs: { 'trusted.overlay.redirect': '/etc' } }],
      layer,
      logger,
    );

    assert.equal(lgetxattr(path.join(layer, 'd'), 'trusted.overlay.redirect'), undefined);
    assert.equal(warnings.length, 1);
    assert.match(warnings[0], /trusted\.overlay\.redirect/);
  });

  it('turns .wh.NAME into a 0/0 character device owned by root', async () => {
    const { layer } = newCase();
    await apply([{ name: 'etc/.wh.gone', uid: 1000, gid: 1000, mode: 0o644 }], layer);

    const st = fs.lstatSync(path.join(layer, 'etc/gone'));
    assert.equal(st.mode, S_IFCHR);
    assert.deepEqual(splitDev(st.rdev), { major: 0, minor: 0 });
    assert.equal(st.uid, 0);
    assert.equal(st.gid, 0);
    assert.deepEqual(fs.readdirSync(path.join(layer, 'etc')), ['gone']);
  });

  it('turns .wh..wh..opq into the opaque xattr, creating the directory', async () => {
    const { layer } = newCase();
    await apply(
      [
        { name: 'd/', type: 'directory' },
        { name: 'd/.wh..wh..opq' },
        { name: 'd/new', content: 'n' },
        { name: 'e/.wh..wh..opq' },
      ],
      layer,
    );

    assert.equal(lgetxattr(path.join(layer, 'd'), 'trusted.overlay.opaque')?.toString(), 'y');
    assert.equal(lgetxattr(path.join(layer, 'e'), 'trusted.overlay.opaque')?.toString(), 'y');
    assert.deepEqual(fs.readdirSync(path.join(layer, 'd')), ['new']);
    assert.deepEqual(fs.readdirSync(path.join(layer, 'e')), []);
  });

  it('lets a later entry of the same path win', async () => {
    const { layer } = newCase();
    await apply(
      [
        { name: 'f', content: 'first' },
        { name: 'f', content: 'second', mode: 0o600 },
        { name: 'dir-then-file/', type: 'directory' },
        { name: 'dir-then-file/child', content: 'c' },
        { name: 'dir-then-file', content: 'now a file' },
        { name: 'file-then-dir', content: 'x' },
        { name: 'file-then-dir/', type: 'directory', mode: 0o700 },
        { name: 'merge/', type: 'directory', mode: 0o755 },
        { name: 'merge/kept', content: 'k' },
        { name: 'merge/', type: 'directory', mode: 0o711, uid: 9 },
        { name: 'link', type: 'symlink', linkname: '/a' },
        { name: 'link', type: 'symlink', linkname: '/b' },
      ],
      layer,
    );

    assert.equal(fs.readFileSync(path.join(layer, 'f'), 'utf8'), 'second');
    assert.equal(fs.lstatSync(path.join(layer, 'f')).mode, 0o100600);
    assert.equal(fs.readFileSync(path.join(layer, 'dir-then-file'), 'utf8'), 'now a file');
    assert.equal(fs.lstatSync(path.join(layer, 'file-then-dir')).mode, 0o040700);
    assert.deepEqual(fs.readdirSync(path.join(layer, 'merge')), ['kept']);
    assert.equal(fs.lstatSync(path.join(layer, 'merge')).mode, 0o040711);
    assert.equal(fs.lstatSync(path.join(layer, 'merge')).uid, 9);
    assert.equal(fs.readlinkSync(path.join(layer, 'link')), '/b');
  });

  it('applies whiteouts of its own entries to lower layers only, in either order', async () => {
    const { layer } = newCase();
    await apply(
      [
        { name: '.wh.file-after' },
        { name: 'file-after', content: 'a' },
        { name: 'file-before', content: 'b' },
        { name: '.wh.file-before' },
        { name: '.wh.dir-after' },
        { name: 'dir-after/', type: 'directory' },
        { name: 'dir-before/', type: 'directory' },
        { name: '.wh.dir-before' },
        { name: '.wh.gone' },
        { name: 'gone/x', content: 'recreated under a whiteout' },
      ],
      layer,
    );

    const opaque = (p: string) =>
      lgetxattr(path.join(layer, p), 'trusted.overlay.opaque')?.toString();
    assert.equal(fs.readFileSync(path.join(layer, 'file-after'), 'utf8'), 'a');
    assert.equal(fs.readFileSync(path.join(layer, 'file-before'), 'utf8'), 'b');
    assert.ok(fs.lstatSync(path.join(layer, 'dir-after')).isDirectory());
    assert.ok(fs.lstatSync(path.join(layer, 'dir-before')).isDirectory());
    assert.equal(opaque('dir-after'), 'y');
    assert.equal(opaque('dir-before'), 'y');
    assert.equal(opaque('gone'), 'y');
    assert.equal(fs.readFileSync(path.join(layer, 'gone/x'), 'utf8'), 'recreated under a whiteout');
  });

  it('skips a whiteout under a directory the layer itself whited out', async () => {
    const { layer } = newCase();
    await apply([{ name: '.wh.foo' }, { name: 'foo/.wh.bar' }], layer);

    const st = fs.lstatSync(path.join(layer, 'foo'));
    assert.equal(st.mode, S_IFCHR);
    assert.deepEqual(fs.readdirSync(layer), ['foo']);
  });

  it('reads long and non-ASCII names from PAX headers', async () => {
    const { layer } = newCase();
    const long = `${'d'.repeat(120)}/${'f'.repeat(150)}`;
    await apply(
      [
        { name: long, content: 'long' },
        { name: 'ünïcødé/文件', content: 'utf8' },
      ],
      layer,
    );

    assert.equal(fs.readFileSync(path.join(layer, long), 'utf8'), 'long');
    assert.equal(fs.readFileSync(path.join(layer, 'ünïcødé/文件'), 'utf8'), 'utf8');
  });

  it('takes owner and mtime from PAX records when present', async () => {
    const { layer } = newCase();
    await apply(
      [{ name: 'f', content: 'x', pax: { uid: '3000000', gid: '3000001', mtime: '1700000000.5' } }],
      layer,
    );

    const st = fs.lstatSync(path.join(layer, 'f'));
    assert.equal(st.uid, 3000000);
    assert.equal(st.gid, 3000001);
    assert.equal(st.mtimeMs, 1700000000500);
  });

  it('refuses a PAX uid or gid out of chown\'s range with one line naming it', async () => {
    const cases: [Record<string, string>, string][] = [
      [{ uid: '99999999999999999999' }, 'uid 99999999999999999999 is out of range (0 to 4294967294)'],
      [{ gid: '4294967295' }, 'gid 4294967295 is out of range (0 to 4294967294)'],
    ];
    for (const [pax, why] of cases) {
      const { layer } = newCase();
      await assert.rejects(apply([{ name: 'f', content: 'x', pax }], layer), (err: unknown) => {
        assert.ok(err instanceof MinidockError);
        assert.equal((err as Error).message, `apply layer entry "f": ${why}`);
        return true;
      });
    }
  });

  it("writes GNU tar's sparse files in all four formats, holes kept", async (t) => {
    const gnuTar = spawnSync('tar', ['--version'], { encoding: 'utf8' });
    if (!/GNU tar/.test(gnuTar.stdout ?? '')) {
      t.skip('needs GNU tar to write the sparse files');
      return;
    }
    // Files with data at a few places and holes between: "few" fits the
    // old GNU header's four map entries, "many" needs extension blocks.
    const src = fs.mkdtempSync(path.join(base, 'sparse-src-'));
    const write = (name: string, size: number, at: number[]) => {
      const fd = fs.openSync(path.join(src, name), 'w');
      for (const off of at) fs.writeSync(fd, Buffer.from(`data at ${off}`), 0, undefined, off);
      fs.ftruncateSync(fd, size);
      fs.closeSync(fd);
    };
    write('few', 3_000_000, [0, 1_500_000, 2_999_980]);
    write('many', 4_000_000, Array.from({ length: 40 }, (_, i) => i * 90_000 + 7));
    write('empty', 1_000_000, []);
    const want = new Map(['few', 'many', 'empty'].map((n) => [n, fs.readFileSync(path.join(src, n))]));

    const formats = [['-H', 'gnu'], ...['0.0', '0.1', '1.0'].map((v) => ['-H', 'posix', `--sparse-version=${v}`])];
    for (const format of formats) {
      const tarred = spawnSync('tar', ['--sparse', ...format, '-C', src, '-cf', '-', 'few', 'many', 'empty'], {
        maxBuffer: 64 << 20,
      });
      assert.equal(tarred.status, 0, tarred.stderr.toString());
      const { layer } = newCase();
      // In awkward pieces, so headers and extension blocks straddle them.
      const pieces: Buffer[] = [];
      for (let i = 0; i < tarred.stdout.length; i += 333) pieces.push(tarred.stdout.subarray(i, i + 333));
      await applyLayer(Readable.from(pieces), layer);

      assert.deepEqual(fs.readdirSync(layer).sort(), ['empty', 'few', 'many'], format.join(' '));
      for (const [name, bytes] of want) {
        const got = fs.readFileSync(path.join(layer, name));
        assert.ok(got.equals(bytes), `${name} (${format.join(' ')})`);
        // Holes stay holes: far fewer blocks than the size would take.
        assert.ok(fs.statSync(path.join(layer, name)).blocks * 512 < bytes.length / 4, name);
      }
    }
  });

  it('refuses a sparse map that disagrees with its data', async () => {
    const cases: Array<[TarEntry, RegExp]> = [
      [
        { name: 's', content: 'abcd', pax: { 'GNU.sparse.map': '10,2,5,2', 'GNU.sparse.size': '20' } },
        /out of order/,
      ],
      [
        { name: 's', content: 'abcd', pax: { 'GNU.sparse.map': '0,4,18,4', 'GNU.sparse.size': '20' } },
        /past the file's end/,
      ],
      [
        { name: 's', content: 'abc', pax: { 'GNU.sparse.map': '0,4', 'GNU.sparse.size': '20' } },
        /shorter than the sparse map/,
      ],
      [
        { name: 's', content: 'abcdef', pax: { 'GNU.sparse.map': '0,4', 'GNU.sparse.size': '20' } },
        /longer than the sparse map/,
      ],
      [
        { name: 's', content: 'x', pax: { 'GNU.sparse.major': '2', 'GNU.sparse.minor': '0' } },
        /GNU sparse format 2.0 is not known/,
      ],
      [{ name: 's', content: '9999999999\n', pax: sparse10('s', 100) }, /sparse map|shorter/],
      [
        {
          name: 's',
          content: 'abcd',
          pax: { 'GNU.sparse.numblocks': '3', 'GNU.sparse.map': '0,4', 'GNU.sparse.size': '20' },
        },
        /numblocks 3 does not match the map's 1 segments/,
      ],
    ];
    for (const [entry, why] of cases) {
      const { layer } = newCase();
      await assert.rejects(apply([entry], layer), (err: unknown) => {
        assert.ok(err instanceof MinidockError);
        assert.equal((err as MinidockError).code, 'ERR_BAD_LAYER');
        assert.match((err as Error).message, /^apply layer entry "s": /);
        assert.match((err as Error).message, why);
        return true;
      });
    }
  });

  it('refuses an old GNU sparse map of more than 1 MiB', async () => {
    const { layer } = newCase();
    const tar = await makeTar([{ name: 'sparse', typeflag: 'S' }]);
    // The header says extension blocks follow; each says another does.
    tar[482] = 1;
    setChecksum(tar);
    const ext = Buffer.alloc(512);
    ext[504] = 1;
    const blocks = Array.from({ length: 3000 }, () => ext);
    const input = Buffer.concat([tar.subarray(0, 512), ...blocks, Buffer.alloc(1024)]);
    await assert.rejects(applyLayer(Readable.from([input]), layer), (err: unknown) => {
      assert.ok(err instanceof MinidockError);
      assert.equal((err as MinidockError).code, 'ERR_BAD_LAYER');
      assert.match((err as Error).message, /a GNU sparse map larger than 1 MiB/);
      return true;
    });
  });

  it('refuses GNU-only entry types it cannot apply with NotImplementedError', async () => {
    const { layer } = newCase();
    await assert.rejects(
      apply([{ name: 'dumpdir/', type: 'directory', typeflag: 'D' }], layer),
      (err: unknown) => {
        assert.ok(err instanceof NotImplementedError);
        assert.match((err as Error).message, /tar entry GNU dump directory \(entry "dumpdir\/"\)/);
        return true;
      },
    );
  });

  it('fails a corrupt tar with a MinidockError', async () => {
    const { layer } = newCase();
    const tar = await makeTar([{ name: 'f', content: 'x' }]);
    tar[10] ^= 0xff; // break the first header's checksum
    await assert.rejects(applyLayer(Readable.from([tar]), layer), (err: unknown) => {
      assert.ok(err instanceof MinidockError);
      assert.equal((err as MinidockError).code, 'ERR_BAD_LAYER');
      return true;
    });
  });

  it('fails a truncated tar with a MinidockError', async () => {
    const { layer } = newCase();
    const tar = await makeTar([{ name: 'f', content: 'x'.repeat(4000) }]);
    const truncated = Readable.from([tar.subarray(0, 2048)]);
    await assert.rejects(applyLayer(truncated, layer), (err: unknown) => {
      assert.ok(err instanceof MinidockError);
      assert.equal((err as MinidockError).code, 'ERR_BAD_LAYER');
      assert.match((err as Error).message, /^read layer tar: /);
      return true;
    });
  });

  it('refuses a header after a lone zero block, as Go archive/tar does', async () => {
    const { layer } = newCase();
    const first = await makeTar([{ name: 'seen', content: 'x' }]);
    const hidden = await makeTar([{ name: 'hidden', content: 'y' }]);
    // One end block only, then another entry.
    const tar = Buffer.concat([first.subarray(0, first.length - 512), hidden]);
    await assert.rejects(applyLayer(Readable.from([tar]), layer), (err: unknown) => {
      assert.ok(err instanceof MinidockError);
      assert.equal((err as MinidockError).code, 'ERR_BAD_LAYER');
      assert.match((err as Error).message, /a header follows a lone zero block at byte 1024/);
      return true;
    });
    assert.equal(fs.existsSync(path.join(layer, 'hidden')), false);
  });

  it('links a hard link to its target when the target comes later', async () => {
    const { layer } = newCase();
    await apply(
      [
        { name: 'a/h1', type: 'link', linkname: 'b/target' },
        { name: 'a/h2', type: 'link', linkname: 'a/h1' },
        { name: 'replaced', type: 'link', linkname: 'b/target' },
        { name: 'replaced', content: 'own content' },
        { name: 'b/target', content: 'shared', mode: 0o750, uid: 5 },
      ],
      layer,
    );

    const target = fs.lstatSync(path.join(layer, 'b/target'));
    assert.equal(target.nlink, 3);
    for (const p of ['a/h1', 'a/h2']) {
      assert.equal(fs.lstatSync(path.join(layer, p)).ino, target.ino, p);
    }
    assert.equal(fs.readFileSync(path.join(layer, 'a/h2'), 'utf8'), 'shared');
    assert.equal(fs.readFileSync(path.join(layer, 'replaced'), 'utf8'), 'own content');
    assert.equal(fs.lstatSync(path.join(layer, 'replaced')).nlink, 1);
  });

  it('fails a hard link whose target never comes', async () => {
    const { layer } = newCase();
    await assert.rejects(
      apply([{ name: 'h', type: 'link', linkname: 'missing/f' }, { name: 'x', content: 'x' }], layer),
      (err: unknown) => {
        assert.ok(err instanceof MinidockError);
        assert.equal((err as MinidockError).code, 'ERR_BAD_LAYER');
        assert.match((err as Error).message, /"h": hard link target "missing\/f" is not in the layer/);
        return true;
      },
    );
  });

  it('refuses a directory that is not empty', async () => {
    const { layer } = newCase();
    fs.writeFileSync(path.join(layer, 'already'), '');
    await assert.rejects(
      apply([{ name: 'f', content: 'x' }], layer),
      /apply layer to ".*": directory is not empty/,
    );
    assert.deepEqual(fs.readdirSync(layer), ['already']);
  });

  it('stops when its signal is aborted', async () => {
    const { layer } = newCase();
    const ac = new AbortController();
    ac.abort(new Error('stop now'));
    const tar = await makeTar([{ name: 'f', content: 'x' }]);
    const applied = applyLayer(Readable.from([tar]), layer, { signal: ac.signal });
    await assert.rejects(applied, /stop now/);
    assert.deepEqual(fs.readdirSync(layer), []);
  });

  it('replaces a planted symlink instead of writing through it', async () => {
    const c = newCase();
    const before = snapshot(c.root, c.layer);
    await apply(
      [
        { name: 'f', type: 'symlink', linkname: path.join(c.sentinel, 'f') },
        { name: 'f', content: 'inside' },
        { name: 'd', type: 'symlink', linkname: c.sentinel },
        { name: 'd/', type: 'directory', mode: 0o700 },
        { name: 's', type: 'symlink', linkname: path.join(c.sentinel, 'passwd') },
        { name: 'h', type: 'link', linkname: 's' },
        { name: 'n', type: 'symlink', linkname: path.join(c.sentinel, 'f') },
        { name: 'n', type: 'fifo' },
      ],
      c.layer,
    );

    assert.deepEqual(snapshot(c.root, c.layer), before);
    assert.equal(fs.readFileSync(path.join(c.layer, 'f'), 'utf8'), 'inside');
    assert.ok(fs.lstatSync(path.join(c.layer, 'd')).isDirectory());
    assert.equal(fs.readlinkSync(path.join(c.layer, 'h')), path.join(c.sentinel, 'passwd'));
    assert.ok(fs.lstatSync(path.join(c.layer, 'n')).isFIFO());
  });

  it('resolves an absolute hard link target inside the layer, not on the host', async () => {
    const c = newCase();
    const before = snapshot(c.root, c.layer);
    await assert.rejects(
      apply([{ name: 'h', type: 'link', linkname: path.join(c.sentinel, 'passwd') }], c.layer),
      (err: unknown) => err instanceof MinidockError && /not in the layer/.test(err.message),
    );
    assert.deepEqual(snapshot(c.root, c.layer), before);
    assert.equal(fs.lstatSync(path.join(c.sentinel, 'passwd')).nlink, 1);
  });
});

describe('applyLayer refuses entries that escape the layer', { skip: needRoot }, () => {
  it('refuses a name with ".."', () => assertRefused(() => [{ name: '../escaped', content: 'x' }]));

  it('refuses ".." after leading "./" and "/"', () =>
    assertRefused(() => [{ name: './/../sentinel/f', content: 'pwned' }]));

  it('refuses ".." in the middle of a name', () =>
    assertRefused(() => [{ name: 'a/b/../../../sentinel/f', content: 'pwned' }]));

  it('refuses ".." in a directory entry', () =>
    assertRefused(() => [{ name: '../newdir/', type: 'directory' }]));

  it('refuses a file below an absolute symlink the layer planted', () =>
    assertRefused(({ sentinel }) => [
      { name: 'a', type: 'symlink', linkname: sentinel },
      { name: 'a/passwd', content: 'pwned' },
    ]));

  it('refuses a file below a "..": symlink the layer planted', () =>
    assertRefused(() => [
      { name: 'a', type: 'symlink', linkname: '..' },
      { name: 'a/escaped', content: 'x' },
    ]));

  it('refuses a directory below a planted symlink', () =>
    assertRefused(({ sentinel }) => [
      { name: 'a', type: 'symlink', linkname: sentinel },
      { name: 'a/sub/new/', type: 'directory' },
    ]));

  it('refuses a symlink chain in a deeper parent', () =>
    assertRefused(({ sentinel }) => [
      { name: 'x/y/', type: 'directory' },
      { name: 'x/y/z', type: 'symlink', linkname: sentinel },
      { name: 'x/y/z/sub/evil', type: 'symlink', linkname: '/' },
    ]));

  it('refuses a whiteout below a planted symlink', () =>
    assertRefused(({ sentinel }) => [
      { name: 'a', type: 'symlink', linkname: sentinel },
      { name: 'a/.wh.f' },
    ]));

  it('refuses an opaque marker below a planted symlink', () =>
    assertRefused(({ sentinel }) => [
      { name: 'a', type: 'symlink', linkname: sentinel },
      { name: 'a/.wh..wh..opq' },
    ]));

  it('refuses a device node below a planted symlink', () =>
    assertRefused(({ sentinel }) => [
      { name: 'a', type: 'symlink', linkname: sentinel },
      { name: 'a/null', type: 'character-device', devmajor: 1, devminor: 3 },
    ]));

  it('refuses a hard link whose target has ".."', () =>
    assertRefused(() => [{ name: 'h', type: 'link', linkname: '../sentinel/passwd' }]));

  it('refuses a hard link whose target goes through a planted symlink', () =>
    assertRefused(({ sentinel }) => [
      { name: 'a', type: 'symlink', linkname: sentinel },
      { name: 'h', type: 'link', linkname: 'a/passwd' },
    ]));

  it('refuses a hard link placed below a planted symlink', () =>
    assertRefused(({ sentinel }) => [
      { name: 'f', content: 'x' },
      { name: 'a', type: 'symlink', linkname: sentinel },
      { name: 'a/h', type: 'link', linkname: 'f' },
    ]));

  it('refuses "a/../../x"', () => assertRefused(() => [{ name: 'a/../../x', content: 'x' }]));

  it('refuses a symlink a -> /etc followed by a/passwd, leaving /etc alone', async () => {
    const passwd = fs.readFileSync('/etc/passwd');
    const etc = fs.readdirSync('/etc').sort();
    await assertRefused(() => [
      { name: 'a', type: 'symlink', linkname: '/etc' },
      { name: 'a/passwd', content: 'pwned::0:0::/:/bin/sh\n' },
    ]);
    assert.deepEqual(fs.readFileSync('/etc/passwd'), passwd);
    assert.deepEqual(fs.readdirSync('/etc').sort(), etc);
  });

  it('refuses a chain of symlinks to ".."', () =>
    assertRefused(() => [
      { name: 'a', type: 'symlink', linkname: '..' },
      { name: 'b', type: 'symlink', linkname: 'a/..' },
      { name: 'c', type: 'symlink', linkname: 'b' },
      { name: 'c/escaped', content: 'x' },
    ]));

  it('refuses a chain of symlinks to ".." used as a hard link target', () =>
    assertRefused(() => [
      { name: 'a', type: 'symlink', linkname: '..' },
      { name: 'b', type: 'symlink', linkname: 'a/../..' },
      { name: 'h', type: 'link', linkname: 'b/sentinel/passwd' },
    ]));

  for (const name of ['.', './', '/', '']) {
    it(`refuses a symlink entry named ${JSON.stringify(name)}`, () =>
      assertRefused(({ sentinel }) => [
        { name, type: 'symlink', linkname: sentinel },
        { name: 'passwd', content: 'pwned' },
      ]));
  }

  it('refuses a hard link waiting for its target when its directory became a symlink', () =>
    assertRefused(({ sentinel }) => [
      { name: 'd/h', type: 'link', linkname: 't' },
      { name: 'd', type: 'symlink', linkname: sentinel },
      { name: 't', content: 'would land in the sentinel as h' },
    ]));

  it('resolves an absolute name inside the layer, not on the host', async () => {
    const c = newCase();
    const before = snapshot(c.root, c.layer);
    const name = path.join(c.sentinel, 'f');
    await apply([{ name, content: 'inside the layer' }], c.layer);
    assert.deepEqual(snapshot(c.root, c.layer), before);
    assert.equal(fs.readFileSync(path.join(c.layer, name), 'utf8'), 'inside the layer');
  });

  it('links a hard link to a symlink that points outside as the symlink itself', async () => {
    const c = newCase();
    const before = snapshot(c.root, c.layer);
    const outside = path.join(c.sentinel, 'passwd');
    await apply(
      [
        { name: 's', type: 'symlink', linkname: outside },
        { name: 'h', type: 'link', linkname: 's' },
        // A later file entry of the same name replaces the link; it does
        // not write through it.
        { name: 's', content: 'inside' },
      ],
      c.layer,
    );
    assert.deepEqual(snapshot(c.root, c.layer), before);
    const h = path.join(c.layer, 'h');
    assert.ok(fs.lstatSync(h).isSymbolicLink());
    assert.equal(fs.readlinkSync(h), outside);
    assert.equal(fs.readFileSync(path.join(c.layer, 's'), 'utf8'), 'inside');
    assert.equal(fs.lstatSync(outside).nlink, 1);
  });

  for (const name of ['.wh.', '.wh..', '.wh...', 'd/.wh...']) {
    it(`refuses the whiteout ${JSON.stringify(name)}`, () => assertRefused(() => [{ name }]));
  }
});

describe('applied layers under overlayfs', { skip: needRoot }, () => {
  it('merges to the view the layers describe', async (t) => {
    const c = newCase();
    const lower = path.join(c.root, 'lower');
    const upper = path.join(c.root, 'upper');
    const merged = path.join(c.root, 'merged');
    for (const d of [lower, upper, merged]) fs.mkdirSync(d);

    await apply(
      [
        { name: 'a/old/f', content: 'old' },
        { name: 'a/keep', content: 'keep' },
        { name: 'b/hidden', content: 'h' },
      ],
      lower,
    );
    await apply(
      [
        { name: 'a/.wh.old' },
        { name: 'a/h1', content: 'pair' },
        { name: 'a/h2', type: 'link', linkname: 'a/h1' },
        { name: 'b/.wh..wh..opq' },
        { name: 'b/shown', content: 's' },
      ],
      upper,
    );

    const options = `lowerdir=${upper}:${lower}`;
    const mount = spawnSync('mount', ['-t', 'overlay', 'overlay', '-o', options, merged], {
      encoding: 'utf8',
    });
    if (mount.status !== 0) {
      t.skip(`overlay mount unavailable: ${mount.stderr.trim() || mount.error?.message}`);
      return;
    }
    try {
      assert.deepEqual(fs.readdirSync(path.join(merged, 'a')).sort(), ['h1', 'h2', 'keep']);
      assert.equal(fs.readFileSync(path.join(merged, 'a/keep'), 'utf8'), 'keep');
      assert.equal(fs.existsSync(path.join(merged, 'a/old')), false);
      const h1 = fs.lstatSync(path.join(merged, 'a/h1'));
      const h2 = fs.lstatSync(path.join(merged, 'a/h2'));
      assert.equal(h1.ino, h2.ino);
      assert.equal(h1.nlink, 2);
      assert.equal(fs.readFileSync(path.join(merged, 'a/h2'), 'utf8'), 'pair');
      assert.deepEqual(fs.readdirSync(path.join(merged, 'b')), ['shown']);
    } finally {
      const umount = spawnSync('umount', [merged], { encoding: 'utf8' });
      assert.equal(umount.status, 0, umount.stderr);
    }
  });
});
