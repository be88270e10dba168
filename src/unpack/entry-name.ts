/**
 * Turning tar entry names into paths relative to the layer directory, and
 * recognising whiteouts. Pure string work: nothing here touches the disk.
 */
import { UnsafePathError } from '../errors.js';

/** The prefix that marks an entry as a whiteout (image-spec layer.md). */
export const whiteoutPrefix = '.wh.';

/** The entry name that marks its directory as opaque. */
export const opaqueMarker = '.wh..wh..opq';

/**
 * Splits a tar entry name into its path components below the layer root.
 *
 * Leading "/" and "./" are dropped, so "/abs/x" names dir/abs/x, as Docker
 * does; empty and "." components are dropped too. An empty result names
 * the layer root itself. Throws UnsafePathError (naming the entry raw,
 * and saying which of its names, `what`, is bad) for a ".." component:
 * Docker also cleans such names lexically, but a layer that needs ".." in
 * a name is broken or hostile, so the whole layer is refused.
 */
export function entryComponents(name: string, raw = name, what = 'name'): string[] {
  const parts: string[] = [];
  for (const part of name.split('/')) {
    if (part === '' || part === '.') {
      continue;
    }
    if (part === '..') {
      throw new UnsafePathError(raw, `${what} has a ".." component`);
    }
    parts.push(part);
  }
  return parts;
}

/** What a whiteout entry asks for. */
export type Whiteout =
  | { kind: 'opaque' }
  | { kind: 'file'; target: string }
  | { kind: 'aufs-meta' }
  | undefined;

/**
 * Returns what the last component base of an entry means as a whiteout,
 * or undefined for an ordinary entry. Throws UnsafePathError for a
 * whiteout that names nothing, "." or ".." (".wh.", ".wh..", ".wh...").
 */
export function parseWhiteout(base: string, entryName: string): Whiteout {
  if (!base.startsWith(whiteoutPrefix)) {
    return undefined;
  }
  if (base === opaqueMarker) {
    return { kind: 'opaque' };
  }

  // Other ".wh..wh." names are AUFS bookkeeping (.wh..wh.plnk, .wh..wh.aufs)
  // that means nothing to overlayfs.
  if (base.startsWith(whiteoutPrefix + whiteoutPrefix)) {
    return { kind: 'aufs-meta' };
  }

  const target = base.slice(whiteoutPrefix.length);
  if (target === '' || target === '.' || target === '..') {
    throw new UnsafePathError(entryName, `whiteout ${JSON.stringify(base)} names no file`);
  }
  return { kind: 'file', target };
}
