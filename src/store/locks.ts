/**
 * Locks between minidock processes: flock(2) on a file under locks/. The
 * kernel releases a lock when its holder closes the file or dies, SIGKILL
 * included, so a killed minidock never leaves a lock that blocks the next
 * command, and no lock can be judged stale while its holder merely runs
 * slowly.
 */
import { open, stat, unlink, type FileHandle } from 'node:fs/promises';
import { setTimeout as sleep } from 'node:timers/promises';
import { MinidockError } from '../errors.js';
import type { Store } from './store.js';

/** Well-known lock names: metadata covers repositories.json, images/ and containers/. */
export const metadataLock = 'metadata';

/**
 * Held shared by every pull and load for its whole length, and exclusively
 * by whatever deletes content (rmi, the prunes, check --repair): content a
 * pull has found or stored but not yet recorded in an image is never
 * deleted under it. Taken before the metadata lock, which is taken before
 * a layer's lock; never the other way round.
 */
export const contentLock = 'content';

/** How long a waiter waits for a lock before giving up. */
const waitLimitMs = 10 * 60_000;

/** A held lock; release() it, or let the process exit. */
interface HeldLock {
  release(): Promise<void>;
  /** Removes the lock file, then releases: for a lock whose subject is gone. */
  discard(): Promise<void>;
}

async function sameFile(fh: FileHandle, path: string): Promise<boolean> {
  const [held, named] = await Promise.all([fh.stat(), stat(path).catch(() => undefined)]);
  return named !== undefined && held.ino === named.ino && held.dev === named.dev;
}

/**
 * Takes the named lock, waiting (polling, with backoff up to 250 ms) while
 * another process holds it. A lock file removed by its holder while we
 * waited is a lock nobody holds any more: the path is opened again.
 */
async function acquire(store: Store, name: string, mode: 'shared' | 'exclusive', signal?: AbortSignal): Promise<HeldLock> {
  // Loaded on first use: commands that take no lock (run, ps) skip koffi.
  const { tryFlock } = await import('../sys/index.js');
  const path = store.path('locks', name);
  const deadline = Date.now() + waitLimitMs;
  let delay = 5;
  for (;;) {
    const fh = await open(path, 'a', 0o600);
    let locked = false;
    try {
      locked = tryFlock(fh.fd, path, mode) && (await sameFile(fh, path));
    } finally {
      if (!locked) await fh.close();
    }
    if (locked) {
      return {
        release: () => fh.close(),
        discard: async () => {
          await unlink(path).catch(() => {});
          await fh.close();
        },
      };
    }
    if (Date.now() > deadline) {
      throw new MinidockError('ERR_LOCK', `lock ${name}: still held by another minidock after ${waitLimitMs / 60_000} minutes`);
    }
    await sleep(delay, undefined, { signal });
    delay = Math.min(delay * 2, 250);
  }
}

/**
 * Runs fn while holding the named lock (exclusively unless `shared`),
 * waiting for other processes to release it. The lock is released when fn
 * settles, whatever its outcome; with `discard`, its file is removed too
 * (for a subject that fn removed).
 */
export async function withLock<T>(
  store: Store,
  name: string,
  fn: () => Promise<T>,
  options: { shared?: boolean; discard?: boolean; signal?: AbortSignal } = {},
): Promise<T> {
  let lock: HeldLock;
  try {
    lock = await acquire(store, name, options.shared ? 'shared' : 'exclusive', options.signal);
  } catch (err) {
    if (err instanceof MinidockError) throw err;
    throw new MinidockError('ERR_LOCK', `lock ${name}: ${(err as Error).message}`, { cause: err });
  }
  let ok = false;
  try {
    const value = await fn();
    ok = true;
    return value;
  } finally {
    await (ok && options.discard ? lock.discard() : lock.release()).catch(() => {});
  }
}
