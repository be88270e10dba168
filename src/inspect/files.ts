/**
 * The merged filesystem of an image (or a container) read straight from its
 * layer directories, whiteouts and opaque directories applied, without
 * mounting anything: one path, one directory, or all of it as a tar.
 */
import fs from 'node:fs';
import { join } from 'node:path';
import { pipeline } from 'node:stream/promises';
import type { Writable } from 'node:stream';
import { pack, type Header } from 'tar-stream';

type Headers = Partial<Header> & { name: string };
import { MinidockError } from '../errors.js';
import { resolveMergedPath } from '../runtime/image-files.js';
import { lgetxattr } from '../sys/index.js';
import { mergedEntries } from './changes.js';
import type { LayerEntry } from './walk.js';

const isOpaque = async (dir: string) => lgetxattr(dir, 'trusted.overlay.opaque')?.toString() === 'y';

/** A path of the merged view, resolved: its entry and the file that holds it. */
export interface ResolvedPath {
  /** Components after symlinks were followed inside the image. */
  parts: string[];
  entry: LayerEntry;
  /** The file on disk (in the layer directory that shows it). */
  file: string;
}

/**
 * Resolves `path` in the merged view of `layers` (diff directories, bottom
 * first), following symlinks inside the image (the last component's
 * unless options.followLast is false). Returns undefined when the
 * view has nothing there.
 */
export async function resolvePath(
  layers: string[],
  path: string,
  options: { followLast?: boolean } = {},
): Promise<ResolvedPath | undefined> {
  const found = await resolveMergedPath([...layers].reverse(), `/${path}`, isOpaque, options);
  if (found === undefined) return undefined;
  if (found.parts.length === 0) {
    const st = fs.lstatSync(layers[0]!);
    const root: LayerEntry = {
      path: '', key: '', depth: 0, kind: 'dir', mode: st.mode & 0o7777, uid: st.uid, gid: st.gid,
      size: 0, bytes: 0, mtime: Math.trunc(st.mtimeMs), ino: st.ino, nlink: st.nlink, hasChildren: true,
    };
    return { parts: [], entry: root, file: layers[0]! };
  }
  const path2 = found.parts.join('/');
  for (const { entry, layer } of mergedEntries(layers, { under: found.parts, maxDepth: 0 })) {
    if (entry.path === path2) return { parts: found.parts, entry, file: join(layers[layer]!, path2) };
  }
  return undefined;
}

/**
 * Yields the names directly inside directory `parts` of the merged view, in
 * name order. Memory holds one name list per layer for that directory.
 */
export function* listDirectory(layers: string[], parts: string[]): Generator<LayerEntry> {
  for (const { entry } of mergedEntries(layers, { under: parts, maxDepth: 1 })) {
    if (entry.depth === parts.length + 1) yield entry;
  }
}

/**
 * Writes the merged view of `layers` (bottom first) to `out` as one tar:
 * every visible entry in path order, parents first; the later names of a
 * hard-link group as links to the first name the view shows. Sockets (which
 * a tar cannot hold) are skipped. Extended attributes are not written.
 * Content is streamed, one file at a time. Returns the number of entries.
 */
export async function exportTar(layers: string[], out: Writable): Promise<number> {
  const tar = pack();
  const done = pipeline(tar, out);
  const firstNames = new Map<string, string>();
  let count = 0;
  try {
    for (const { entry, layer } of mergedEntries(layers)) {
      if (entry.kind === 'socket' || entry.kind === 'whiteout') continue;
      const header: Headers = {
        name: entry.kind === 'dir' ? `${entry.path}/` : entry.path,
        mode: entry.mode,
        uid: entry.uid,
        gid: entry.gid,
        mtime: new Date(entry.mtime),
        type: tarType(entry),
        size: 0,
      };
      const file = join(layers[layer]!, entry.path);
      if (entry.kind === 'symlink') header.linkname = entry.target;
      if (entry.device !== undefined) {
        header.devmajor = entry.device.major;
        header.devminor = entry.device.minor;
      }
      if (entry.kind === 'file') {
        const id = `${layer}:${entry.ino}`;
        const first = firstNames.get(id);
        if (first !== undefined) {
          header.type = 'link';
          header.linkname = first;
        } else {
          if (entry.nlink > 1) firstNames.set(id, entry.path);
          header.size = entry.size;
        }
      }
      count++;
      await writeEntry(tar, header, header.size ? file : undefined);
    }
    tar.finalize();
  } catch (err) {
    tar.destroy(err as Error);
    await done.catch(() => {});
    throw err;
  }
  await done;
  return count;
}

function tarType(e: LayerEntry): Header['type'] {
  switch (e.kind) {
    case 'dir':
      return 'directory';
    case 'symlink':
      return 'symlink';
    case 'char':
      return 'character-device';
    case 'block':
      return 'block-device';
    case 'fifo':
      return 'fifo';
    default:
      return 'file';
  }
}

// Files up to this size are read with one call and handed to the packer
// whole: a stream per small file costs more than the file.
const smallFile = 256 * 1024;

function writeEntry(tar: ReturnType<typeof pack>, header: Headers, file: string | undefined): Promise<void> {
  return new Promise((resolve, reject) => {
    const done = (err?: Error | null) => (err ? reject(err) : resolve());
    if (file === undefined || (header.size ?? 0) <= smallFile) {
      let content: Buffer;
      try {
        content = file === undefined ? Buffer.alloc(0) : fs.readFileSync(file);
      } catch (err) {
        reject(new MinidockError('ERR_EXPORT', `read ${JSON.stringify(file)}: ${(err as Error).message}`, { cause: err }));
        return;
      }
      if (content.length !== (header.size ?? 0)) {
        reject(new MinidockError('ERR_EXPORT', `read ${JSON.stringify(file)}: its size changed while exporting`));
        return;
      }
      tar.entry(header, content, done);
      return;
    }
    const sink = tar.entry(header, done);
    const src = fs.createReadStream(file);
    src.on('error', (err) => {
      sink.destroy(err);
      reject(new MinidockError('ERR_EXPORT', `read ${JSON.stringify(file)}: ${err.message}`, { cause: err }));
    });
    src.pipe(sink);
  });
}

/** Splits IMAGE[:PATH] at the last colon that starts an absolute path ("img:/etc"). */
export function splitImagePath(arg: string): { image: string; path?: string } {
  const i = arg.indexOf(':/');
  if (i < 0) return { image: arg };
  return { image: arg.slice(0, i), path: arg.slice(i + 1) };
}
