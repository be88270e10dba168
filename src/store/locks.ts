/**
 * Locks between minidock processes, with proper-lockfile. A lock is a
 * directory under locks/ whose mtime the holder refreshes; one left by a
 * killed process goes stale and is taken over.
 */
import { MinidockError } from '../errors.js';
import type { Store } from './store.js';

/** Well-known lock names: metadata covers repositories.json, images/ and containers/. */
export const metadataLock = 'metadata';

/**
 * Runs fn while holding the named lock, waiting for another process to
 * release it. The lock is released when fn settles, whatever its outcome.
 */
export async function withLock<T>(store: Store, name: string, fn: () => Promise<T>): Promise<T> {
  let release: () => Promise<void>;
  try {
    // Loaded on first use: commands that take no lock (run, ps) skip its cost.
    const { lock } = await import('proper-lockfile');
    release = await lock(store.path('locks', name), {
      realpath: false,
      stale: 10_000,
      update: 2_000,
      retries: { retries: 600, minTimeout: 20, maxTimeout: 500, factor: 1.5 },
      onCompromised: () => {
        // Another process judged our lock stale (we were paused past
        // `stale`). Carry on: the critical sections are idempotent renames.
      },
    });
  } catch (err) {
    throw new MinidockError('ERR_LOCK', `lock ${name}: ${(err as Error).message}`, { cause: err });
  }
  try {
    return await fn();
  } finally {
    await release().catch(() => {});
  }
}
