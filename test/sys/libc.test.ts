import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, describe, it } from 'node:test';
import {
  S_IFCHR,
  S_IFIFO,
  SyscallError,
  lgetxattr,
  llistxattr,
  lsetxattr,
  makedev,
  mknod,
  splitDev,
} from '../../src/sys/index.js';

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'minidock-libc-'));
after(() => fs.rmSync(dir, { recursive: true, force: true }));

const isRoot = process.getuid?.() === 0;

describe('makedev and splitDev', () => {
  it('round-trip small and large device numbers as glibc encodes them', () => {
    assert.equal(makedev(1, 3), 0x103n);
    assert.equal(makedev(8, 17), 0x811n);
    for (const [major, minor] of [[0, 0], [1, 3], [259, 1048575], [4095, 255], [300, 70000]]) {
      assert.deepEqual(splitDev(makedev(major, minor)), { major, minor });
    }
  });
});

describe('mknod', () => {
  it('creates a fifo', () => {
    const p = path.join(dir, 'fifo');
    mknod(p, S_IFIFO | 0o600);
    assert.ok(fs.lstatSync(p).isFIFO());
  });

  it('creates a character device', { skip: !isRoot && 'needs root (CAP_MKNOD)' }, () => {
    const p = path.join(dir, 'null');
    mknod(p, S_IFCHR | 0o644, makedev(1, 3));
    const st = fs.lstatSync(p);
    assert.ok(st.isCharacterDevice());
    assert.deepEqual(splitDev(st.rdev), { major: 1, minor: 3 });
  });

  it('throws SyscallError with errno text on an existing name', () => {
    const p = path.join(dir, 'exists');
    fs.writeFileSync(p, '');
    assert.throws(
      () => mknod(p, S_IFIFO | 0o600),
      (err: unknown) =>
        err instanceof SyscallError &&
        err.errnoCode === 'EEXIST' &&
        err.errno === 17 &&
        err.message === `mknod ${JSON.stringify(p)}: file exists`,
    );
  });
});

describe('xattrs', () => {
  it('sets, reads and lists an xattr byte-exact', () => {
    const p = path.join(dir, 'x');
    fs.writeFileSync(p, '');
    const value = Buffer.from([0, 0xff, 0x80, 0x41]);
    lsetxattr(p, 'user.minidock', value);
    assert.deepEqual(lgetxattr(p, 'user.minidock'), value);
    assert.ok(llistxattr(p).includes('user.minidock'));
  });

  it('returns undefined for a missing xattr', () => {
    const p = path.join(dir, 'y');
    fs.writeFileSync(p, '');
    assert.equal(lgetxattr(p, 'user.none'), undefined);
  });

  it('does not follow a symlink', () => {
    const target = path.join(dir, 'target');
    const link = path.join(dir, 'link');
    fs.writeFileSync(target, '');
    fs.symlinkSync(target, link);
    lsetxattr(target, 'user.t', Buffer.from('t'));
    assert.equal(lgetxattr(link, 'user.t'), undefined);
  });

  it('throws SyscallError for a missing path', () => {
    assert.throws(
      () => lgetxattr(path.join(dir, 'missing'), 'user.x'),
      (err: unknown) => err instanceof SyscallError && err.errnoCode === 'ENOENT',
    );
  });
});
