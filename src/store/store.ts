/**
 * The store root and its on-disk layout (documented in store/README.md).
 *
 *   VERSION                    format version of this layout
 *   blobs/sha256/<hex>         verified content: manifests, configs, layer blobs
 *   layers/<diffID hex>/diff   one unpacked layer in overlay format (a lower dir)
 *   layers/<diffID hex>/layer.json
 *   layers/l/<short id>        short link to a layer's diff/, for overlay's options
 *   images/<config hex>.json   one record per image (its id is the config digest)
 *   images/<config hex>.cache  facts derived from an image (resolved users)
 *   repositories.json          tags: "registry/repo:tag" → image id
 *   names/<name>               a container name's claim, holding its id
 *   containers/<id>/           state.json, upper/, work/, rootfs/
 *   tmp/                       unpacks, load extractions and writes in progress, never
 *                              read as content; tmp/partial-<alg>-<hex>: a layer
 *                              download kept for the next pull, whose bytes are
 *                              verified again
 *   locks/                     lock files (flock(2))
 *
 * Everything that becomes visible under blobs/, layers/ or images/ gets there
 * by rename from tmp/, so a crash never leaves a partial entry under a final
 * name.
 */
import { mkdir, readFile, rename, open, rm, unlink } from 'node:fs/promises';
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { MinidockError } from '../errors.js';

/** The format version this build reads and writes. */
export const storeFormatVersion = 1;

const subdirs = ['blobs/sha256', 'layers', 'images', 'containers', 'tmp', 'locks'];

/** A store root on disk. Cheap to construct; `open` checks and creates the layout. */
export class Store {
  readonly root: string;
  /** Called once per lock taken, when that lock is held by another process and must be waited for. */
  onLockWait?: (name: string) => void;

  constructor(root: string) {
    this.root = root;
  }

  /**
   * Opens the store at root, creating its layout on first use. Refuses a
   * store written by a newer format instead of misreading it.
   */
  static async open(root: string): Promise<Store> {
    const store = new Store(root);
    const versionFile = join(root, 'VERSION');
    let text: string | undefined;
    try {
      text = await readFile(versionFile, 'utf8');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') {
        throw new MinidockError('ERR_STORE', `open store ${JSON.stringify(root)}: ${(err as Error).message}`);
      }
    }
    if (text !== undefined) {
      const version = Number(text.trim());
      if (!Number.isInteger(version) || version > storeFormatVersion) {
        throw new MinidockError(
          'ERR_STORE_VERSION',
          `open store ${JSON.stringify(root)}: format version ${text.trim()} is newer than this minidock understands (${storeFormatVersion})`,
          { hint: 'upgrade minidock, or point --root at another directory' },
        );
      }
      return store;
    }
    try {
      await Promise.all(subdirs.map((d) => mkdir(join(root, d), { recursive: true, mode: 0o700 })));
      await writeAtomic(store, versionFile, `${storeFormatVersion}\n`);
    } catch (err) {
      throw new MinidockError('ERR_STORE', `create store ${JSON.stringify(root)}: ${(err as Error).message}`, {
        hint: 'minidock needs root; run it with sudo, or point --root at a writable directory',
      });
    }
    return store;
  }

  path(...parts: string[]): string {
    return join(this.root, ...parts);
  }

  /** A fresh, unique path under tmp/ (not created). */
  tmpPath(prefix: string): string {
    return join(this.root, 'tmp', `${prefix}.${process.pid}.${randomBytes(4).toString('hex')}`);
  }
}

/**
 * Writes data to path atomically: a temp file in the store's tmp/, fsynced,
 * then renamed over path. Readers see the old content or the new, never a
 * mix.
 */
export async function writeAtomic(store: Store, path: string, data: string | Uint8Array): Promise<void> {
  const tmp = store.tmpPath('write');
  try {
    const fh = await open(tmp, 'w', 0o644);
    try {
      await fh.writeFile(data);
      await fh.sync();
    } finally {
      await fh.close();
    }
    await rename(tmp, path);
  } catch (err) {
    await unlink(tmp).catch(() => {});
    throw err;
  }
}

/** Reads and parses a JSON file, or returns undefined when it does not exist. */
export async function readJSON<T>(path: string): Promise<T | undefined> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw err;
  }
  try {
    return JSON.parse(text) as T;
  } catch (err) {
    throw new MinidockError('ERR_STORE_CORRUPT', `read ${JSON.stringify(path)}: ${(err as Error).message}`);
  }
}

/** Writes value as JSON to path atomically. */
export function writeJSON(store: Store, path: string, value: unknown): Promise<void> {
  return writeAtomic(store, path, `${JSON.stringify(value, null, 2)}\n`);
}

/**
 * Removes a directory tree so that it vanishes at once: it is renamed into
 * tmp/ first, then deleted there (a crash midway leaves only tmp/ garbage,
 * which pull sweeps). A missing path is not an error.
 */
export async function removeTree(store: Store, path: string, prefix: string): Promise<void> {
  const doomed = store.tmpPath(prefix);
  try {
    await rename(path, doomed);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return;
    throw err;
  }
  await removeRecursive(doomed);
}

/**
 * Removes path and everything below it; a missing path is not an error.
 * Node's rm walks by whole paths, which a container can make longer than
 * PATH_MAX (mkdir in a loop): then GNU rm, which walks by directory fds,
 * does it.
 */
export async function removeRecursive(path: string): Promise<void> {
  try {
    await rm(path, { recursive: true, force: true });
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENAMETOOLONG') throw err;
    const { execFile } = await import('node:child_process');
    await new Promise<void>((resolve, reject) =>
      execFile('rm', ['-rf', '--one-file-system', '--', path], (e, _out, stderr) =>
        e ? reject(new MinidockError('ERR_STORE', `remove ${JSON.stringify(path)}: ${stderr.trim() || e.message}`)) : resolve(),
      ),
    );
  }
}
