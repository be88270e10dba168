/**
 * Reading one file of an image's merged root filesystem straight from its
 * layer directories, without mounting anything: the topmost layer that has
 * the path wins, unless a layer above deleted it (a whiteout device) or made
 * one of its parent directories opaque.
 */
import { lstat, readFile } from 'node:fs/promises';
import { join } from 'node:path';

/**
 * Returns the content of path (absolute, inside the image) as UTF-8, or
 * undefined when the merged view has no regular file there. `layers` lists
 * the layer diff directories topmost first. `isOpaque` reports whether a
 * directory of a layer carries overlay's opaque mark.
 */
export async function readMergedFile(
  layers: string[],
  path: string,
  isOpaque: (dir: string) => Promise<boolean>,
): Promise<string | undefined> {
  const parts = path.split('/').filter(Boolean);
  for (const layer of layers) {
    // A whiteout or an opaque mark on the path or one of its ancestors in
    // this layer hides everything below it.
    let hidden = false;
    for (let i = 1; i <= parts.length && !hidden; i++) {
      const p = join(layer, ...parts.slice(0, i));
      const st = await lstat(p).catch(() => undefined);
      if (st === undefined) break;
      if (st.isCharacterDevice() && st.rdev === 0) hidden = true;
      else if (i < parts.length && st.isDirectory() && (await isOpaque(p))) {
        // The ancestor is opaque: lower layers are hidden, this one is not.
        const file = await readIfFile(join(layer, ...parts));
        return file;
      }
    }
    if (hidden) return undefined;
    const file = await readIfFile(join(layer, ...parts));
    if (file !== undefined) return file;
  }
  return undefined;
}

async function readIfFile(p: string): Promise<string | undefined> {
  const st = await lstat(p).catch(() => undefined);
  if (st === undefined || !st.isFile()) return undefined;
  return readFile(p, 'utf8');
}
