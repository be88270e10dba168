/**
 * Where overlayfs cannot be used, run says so in one line with the remedy
 * and exits 125: a store on overlayfs (a real overlay mounted by the
 * test), a filesystem without d_type (a real ext4 without its filetype
 * feature, on a loop device), and a kernel without overlayfs (a mock
 * /proc/filesystems and modules directory: the test cannot unload the
 * kernel's overlay).
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { after, before, describe, test } from 'node:test';
import { MinidockError } from '../../src/errors.js';
import { checkOverlaySupport, kernelHasOverlay } from '../../src/runtime/overlay-support.js';
import { Store } from '../../src/store/index.js';
import { runCli } from '../helpers/cli.js';
import { fixtureLayouts } from '../helpers/fixtures.js';

const run = promisify(execFile);
const root = process.getuid?.() === 0;

describe('overlay support', () => {
  let dir: string;

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'minidock-overlay-'));
  });

  after(async () => {
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  /** Loads the busybox fixture into a store at storeRoot and runs it; returns the run's result. */
  const loadAndRun = async (storeRoot: string) => {
    const loaded = await runCli(['load', '-i', join(await fixtureLayouts(), 'busybox')], { root: storeRoot });
    assert.equal(loaded.code, 0, loaded.stderr);
    const id = /sha256:[0-9a-f]{64}/.exec(loaded.stdout)![0];
    return runCli(['run', '--rm', id, 'true'], { root: storeRoot });
  };

  test('a store on overlayfs is refused before any container is created', { skip: !root && 'needs root (mounts an overlay)' }, async () => {
    const base = join(dir, 'on-overlay');
    for (const d of ['lower', 'upper', 'work', 'merged']) await mkdir(join(base, d), { recursive: true });
    const merged = join(base, 'merged');
    await run('mount', ['-t', 'overlay', 'overlay', '-o', `lowerdir=${base}/lower,upperdir=${base}/upper,workdir=${base}/work`, merged]);
    try {
      const storeRoot = join(merged, 'store');
      const r = await loadAndRun(storeRoot);
      assert.equal(r.code, 125);
      assert.equal(r.stdout, '');
      assert.equal(
        r.stderr,
        `minidock: cannot use overlayfs: the store ${JSON.stringify(storeRoot)} is itself on overlayfs, which cannot hold a container's writable layer\n` +
          'hint: point --root (or MINIDOCK_ROOT) at a directory on ext4, xfs or btrfs, such as a volume mounted from the host\n',
      );
      assert.equal((await runCli(['ps', '-a', '-q'], { root: storeRoot })).stdout, '', 'no container was created');
    } finally {
      await run('umount', [merged]);
    }
  });

  const noDType = !root ? 'needs root (mounts a loop device)' : !existsSync('/usr/sbin/mkfs.ext4') ? 'needs mkfs.ext4 (Debian package e2fsprogs)' : false;
  test('a store on a filesystem without d_type is refused, naming the remedy', { skip: noDType }, async () => {
    const image = join(dir, 'nodtype.img');
    const mnt = join(dir, 'nodtype');
    await mkdir(mnt);
    await run('truncate', ['-s', '64M', image]);
    await run('mkfs.ext4', ['-q', '-F', '-O', '^filetype', image]);
    await run('mount', ['-o', 'loop', image, mnt]);
    try {
      const r = await loadAndRun(join(mnt, 'store'));
      assert.equal(r.code, 125);
      assert.equal(
        r.stderr,
        `minidock: cannot use overlayfs: the filesystem of ${JSON.stringify(join(mnt, 'store'))} does not record file types in directory entries (d_type)\n` +
          'hint: point --root at a filesystem with d_type: ext4 with its filetype feature, or xfs formatted with ftype=1\n',
      );
    } finally {
      await run('umount', [mnt]);
    }
  });

  test('a kernel without overlayfs is told from one that has it or can load it (mock /proc/filesystems)', async () => {
    const mock = join(dir, 'mock-kernel');
    const modulesDir = join(mock, 'modules');
    await mkdir(join(modulesDir, 'kernel', 'fs', 'overlayfs'), { recursive: true });
    const procFilesystems = join(mock, 'filesystems');
    await writeFile(procFilesystems, 'nodev\tsysfs\nnodev\ttmpfs\n\text4\n');
    assert.equal(kernelHasOverlay({ procFilesystems, modulesDir }), false);

    const store = await Store.open(join(dir, 'store-for-mock'));
    await assert.rejects(checkOverlaySupport(store, { procFilesystems, modulesDir }), (err: unknown) => {
      assert.ok(err instanceof MinidockError);
      assert.equal(err.message, 'cannot use overlayfs: this kernel has no overlay filesystem and no overlay module');
      assert.equal(err.hint, 'load it with modprobe overlay, or use a kernel built with CONFIG_OVERLAY_FS');
      return true;
    });

    await writeFile(join(modulesDir, 'kernel', 'fs', 'overlayfs', 'overlay.ko.xz'), '');
    assert.equal(kernelHasOverlay({ procFilesystems, modulesDir }), true, 'a module mount(2) can load');
    await writeFile(procFilesystems, 'nodev\tsysfs\nnodev\toverlay\n');
    await rm(join(modulesDir, 'kernel'), { recursive: true });
    assert.equal(kernelHasOverlay({ procFilesystems, modulesDir }), true, 'overlay built in');
  });
});
