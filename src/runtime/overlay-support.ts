/**
 * Telling, before a container is created, why overlayfs cannot be used
 * here, with what to do about it: the store on overlayfs (which cannot hold
 * a container's upper directory), a filesystem that does not record file
 * types in its directory entries (d_type, which overlayfs needs), or a
 * kernel without overlayfs.
 */
import { existsSync, readFileSync } from 'node:fs';
import { mkdir, readFile, rm, stat, statfs, writeFile } from 'node:fs/promises';
import { release } from 'node:os';
import { join } from 'node:path';
import { MinidockError } from '../errors.js';
import { writeAtomic, type Store } from '../store/index.js';

/** statfs(2) f_type of overlayfs (OVERLAYFS_SUPER_MAGIC). */
const overlayMagic = 0x794c7630;

/** Where the kernel names the filesystems it has and the modules it can load; tests point these elsewhere. */
export interface OverlayHost {
  procFilesystems: string;
  modulesDir: string;
}

const host: OverlayHost = {
  procFilesystems: '/proc/filesystems',
  modulesDir: `/lib/modules/${release()}`,
};

function unusable(message: string, hint: string): MinidockError {
  return new MinidockError('ERR_OVERLAY', `cannot use overlayfs: ${message}`, { hint });
}

/** True when the kernel has overlayfs, or has a module that mount(2) would load. */
export function kernelHasOverlay(h: OverlayHost = host): boolean {
  let listed = '';
  try {
    listed = readFileSync(h.procFilesystems, 'utf8');
  } catch {
    return true; // no /proc to ask: let mount(2) decide
  }
  if (/^\S*\toverlay$/m.test(listed)) return true;
  const dir = join(h.modulesDir, 'kernel', 'fs', 'overlayfs');
  return ['overlay.ko', 'overlay.ko.xz', 'overlay.ko.zst', 'overlay.ko.gz'].some((f) => existsSync(join(dir, f)));
}

/**
 * Throws MinidockError (ERR_OVERLAY, with a hint naming the remedy) when
 * containers of this store cannot be stacked with overlayfs. Cheap on the
 * run path: one statfs and a read of /proc/filesystems; the d_type probe
 * (which loads koffi) runs once per filesystem of containers/ and is
 * remembered in the store's `overlay-checked`.
 */
export async function checkOverlaySupport(store: Store, h: OverlayHost = host): Promise<void> {
  const dir = store.path('containers');
  const fs = await statfs(dir);
  if (fs.type === overlayMagic) {
    throw unusable(
      `the store ${JSON.stringify(store.root)} is itself on overlayfs, which cannot hold a container's writable layer`,
      'point --root (or MINIDOCK_ROOT) at a directory on ext4, xfs or btrfs, such as a volume mounted from the host',
    );
  }
  if (!kernelHasOverlay(h)) {
    throw unusable(
      'this kernel has no overlay filesystem and no overlay module',
      'load it with modprobe overlay, or use a kernel built with CONFIG_OVERLAY_FS',
    );
  }

  const marker = store.path('overlay-checked');
  const dev = String((await stat(dir)).dev);
  if ((await readFile(marker, 'utf8').catch(() => '')).trim() === dev) return;
  const probe = store.tmpPath('dtype');
  let type: number | undefined;
  try {
    await mkdir(probe);
    await writeFile(join(probe, 'f'), '');
    const { direntType } = await import('../sys/index.js');
    type = direntType(probe, 'f');
  } finally {
    await rm(probe, { recursive: true, force: true });
  }
  if (type === 0) {
    throw unusable(
      `the filesystem of ${JSON.stringify(store.root)} does not record file types in directory entries (d_type)`,
      'point --root at a filesystem with d_type: ext4 with its filetype feature, or xfs formatted with ftype=1',
    );
  }
  await writeAtomic(store, marker, `${dev}\n`);
}
