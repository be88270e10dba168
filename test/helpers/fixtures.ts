/**
 * The fixture image layouts, built once and shared: by every test in a
 * process, and across processes through a cache under /tmp keyed by what
 * determines the bytes (the busybox binary, the build script, zlib).
 */
import { createHash } from 'node:crypto';
import { mkdir, mkdtemp, readFile, rename, rm, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { buildImages, defaultBusyboxPath, fixtureNames } from '../../fixtures/build-images.js';

/** The parent of the per-key cache directories. */
export const fixtureCacheRoot = '/tmp/minidock-fixtures';

let built: Promise<string> | undefined;

async function cacheKey(): Promise<string> {
  const script = fileURLToPath(new URL('../../fixtures/build-images.js', import.meta.url));
  const h = createHash('sha256');
  h.update(await readFile(defaultBusyboxPath));
  h.update(await readFile(script));
  h.update(`zlib ${process.versions.zlib}`);
  return h.digest('hex').slice(0, 16);
}

async function complete(dir: string): Promise<boolean> {
  for (const name of fixtureNames) {
    try {
      await stat(join(dir, name, 'index.json'));
    } catch {
      return false;
    }
  }
  return true;
}

async function buildCached(): Promise<string> {
  const outDir = join(fixtureCacheRoot, await cacheKey());
  if (await complete(outDir)) return outDir;

  // Build beside the cache entry and rename it into place: two test
  // processes may build at once, and the loser keeps the winner's copy.
  await mkdir(fixtureCacheRoot, { recursive: true });
  const tmp = await mkdtemp(`${outDir}.tmp-`);
  try {
    await buildImages(tmp);
    await rename(tmp, outDir);
  } catch (err) {
    await rm(tmp, { recursive: true, force: true });
    if (await complete(outDir)) return outDir;
    throw err;
  }
  return outDir;
}

/**
 * Returns OUTDIR, a directory holding the busybox, layered and multiarch
 * layouts (see fixtures/README.md). Builds them on first use; later calls,
 * in this process or another, reuse the build. Tests must not modify it.
 */
export function fixtureLayouts(): Promise<string> {
  built ??= buildCached();
  built.catch(() => {
    built = undefined;
  });
  return built;
}
