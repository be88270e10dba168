/**
 * Unpacking layers: a layer blob (plain, gzip or zstd tar) applied once to
 * its own directory in overlayfs' on-disk format, ready to be a lowerdir.
 *
 * OCI whiteouts become what overlayfs understands: `.wh.NAME` a 0/0
 * character device NAME, `.wh..wh..opq` the trusted.overlay.opaque xattr
 * "y" on its directory. No entry may create or change anything outside the
 * layer directory; see applyLayer for what is refused.
 *
 * Limitations:
 * - Needs root: chown, mknod and trusted.* xattrs (no rootless mode).
 * - zstd needs a Node.js with zstd in node:zlib (22.15+) or the zstd command
 *   (Debian's zstd package), run as a streaming subprocess.
 * - Entry names are decoded as UTF-8 by tar-stream, so names that are not
 *   valid UTF-8 are mangled (never into "/" or "..", so never unsafely).
 * - GNU sparse files are read in all four formats (old GNU, PAX 0.0, 0.1,
 *   1.0) and written with holes; other GNU-only entry types (D, M, V)
 *   are refused.
 * - LIBARCHIVE.xattr.* records are ignored; SCHILY.xattr.* are applied.
 * - The root entry ("./") is skipped, as Docker does.
 */
export { applyLayer, type ApplyLayerOptions, type LayerStats } from './apply-layer.js';
export { checkDecompressor, decompressor } from './decompress.js';
export { TarTailStream } from './tar-tail.js';
