/**
 * Applying one layer tar to an empty directory in overlayfs' on-disk
 * format: the directory becomes one lowerdir of the container's overlay.
 */
import fs from 'node:fs';
import path from 'node:path';
import type { Readable } from 'node:stream';
import { extract, type Header } from 'tar-stream';
import { MinidockError, NotImplementedError, UnsafePathError, messageOf } from '../errors.js';
import { silentLogger, type Logger } from '../log.js';
import { S_IFBLK, S_IFCHR, S_IFIFO, lsetxattr, makedev, mknod } from '../sys/index.js';
import { entryComponents, parseWhiteout, type Whiteout } from './entry-name.js';
import { PaxTap, parsePaxRecords, type TappedEntry } from './pax-tap.js';
import { BadSparseError, sparseSpecOf, writeSparse } from './sparse.js';

/** What applyLayer did. */
export interface LayerStats {
  /** Tar entries read, whiteouts and directories included. */
  entries: number;
  /** Bytes of regular file content written. */
  bytes: number;
}

export interface ApplyLayerOptions {
  logger?: Logger;
  signal?: AbortSignal;
}

// tar-stream's header, with the field its type declarations omit and pax
// typed as what tar-stream puts there.
type TarHeader = Omit<Header, 'pax' | 'type'> & {
  type: Header['type'] | null;
  pax?: Record<string, string> | null;
  byteOffset: number;
};

// One entry as tar-stream's extractor yields it: its data, then the end.
interface Entry extends AsyncIterable<unknown> {
  header: Header;
}

const opaqueXattr = 'trusted.overlay.opaque';

// Files up to this size are gathered and written with one call.
const smallFile = 256 * 1024;

const { O_WRONLY, O_CREAT, O_EXCL, O_NOFOLLOW } = fs.constants;

/**
 * Reads the uncompressed layer tar from `tar` and applies it to `dir`,
 * which must exist and be empty, in overlayfs' format: `.wh.NAME` becomes a
 * 0/0 character device NAME, `.wh..wh..opq` in D sets trusted.overlay.opaque
 * "y" on D. Must run as root (it chowns, mknods and sets trusted.* xattrs).
 *
 * Nothing outside `dir` is created or changed, whatever the entries' names
 * and links say: names with "..", paths through a symlink the layer
 * planted, hard links out of the layer and whiteouts that name nothing are
 * refused with UnsafePathError, which fails the whole layer. GNU sparse
 * files (all four formats) are written with their holes. Tar entry types
 * it does not know (GNU dump directories, volume headers) fail with
 * NotImplementedError. Other failures are MinidockErrors naming the entry.
 *
 * Not atomic: after a failure `dir` holds part of the layer, and the caller
 * must remove it. `tar` is consumed to its end, or destroyed on failure.
 * Memory stays flat whatever the file sizes.
 */
export async function applyLayer(
  tar: Readable,
  dir: string,
  options: ApplyLayerOptions = {},
): Promise<LayerStats> {
  const { signal } = options;
  const applier = new LayerApplier(dir, options.logger ?? silentLogger);
  const tap = new PaxTap();
  const extractor = extract();
  const stats: LayerStats = { entries: 0, bytes: 0 };

  signal?.throwIfAborted();
  assertEmpty(dir);
  const onAbort = () => extractor.destroy(signal?.reason);
  signal?.addEventListener('abort', onAbort, { once: true });
  const onError = (err: Error) => extractor.destroy(err);
  tar.on('error', onError);
  tap.on('error', onError);
  tar.pipe(tap).pipe(extractor);

  try {
    for await (const entry of extractor) {
      signal?.throwIfAborted();
      const header = entry.header as unknown as TarHeader;
      const tapped = tap.takeEntry(header.byteOffset);
      stats.entries++;
      stats.bytes += await applier.apply(header, tapped, entry);
    }
    signal?.throwIfAborted();
    applier.finish();
  } catch (err) {
    tar.unpipe(tap);
    tap.destroy();
    tar.destroy();
    if (signal?.aborted) {
      throw signal.reason;
    }
    throw wrapReadError(err, signal);
  } finally {
    signal?.removeEventListener('abort', onAbort);
    tar.off('error', onError);
  }

  // Docker reads such a layer and ignores the rest; umoci warns. The bytes
  // still count for the diffID, which the caller computes over all of them.
  if (tap.trailing.nonZero) {
    const n = tap.trailing.bytes;
    const what = `${n} bytes of trailing data after the tar's end`;
    options.logger?.warn(`apply layer ${dir}: ignore ${what}`);
  }
  options.logger?.debug(`apply layer ${dir}: ${stats.entries} entries, ${stats.bytes} bytes`);
  return stats;
}

function assertEmpty(dir: string): void {
  let names: string[];
  try {
    names = fs.readdirSync(dir);
  } catch (err) {
    const where = JSON.stringify(dir);
    throw new MinidockError('ERR_UNPACK', `apply layer to ${where}: ${messageOf(err)}`, {
      cause: err,
    });
  }
  if (names.length > 0) {
    const where = JSON.stringify(dir);
    throw new MinidockError('ERR_UNPACK', `apply layer to ${where}: directory is not empty`);
  }
}

function wrapReadError(err: unknown, signal: AbortSignal | undefined): unknown {
  if (err instanceof MinidockError || (signal?.aborted && err === signal.reason)) {
    return err;
  }
  return new MinidockError('ERR_BAD_LAYER', `read layer tar: ${messageOf(err).toLowerCase()}`, {
    cause: err,
  });
}

/** A hard link entry waiting for its target to be created. */
interface PendingLink {
  rel: string;
  name: string;
}

/** Directory metadata applied at the end, once no child changes its mtime. */
interface DirTimes {
  atime: number;
  mtime: number;
}

/**
 * The state of one layer being applied.
 *
 * Path safety works by lstat-ing each parent component below `dir` and
 * refusing symlinks, with a cache of the directories already checked. We
 * chose this over openat2(RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS): Node's fs
 * has no *at() calls, so every create, chown, chmod, utimes and setxattr
 * would have to go through koffi with directory fds, a large surface for
 * little gain. The check-then-use gap lstat leaves is not a hole here:
 * `dir` is a fresh private directory of the store and this applier is its
 * only writer, so the only things that can appear in it are what the layer
 * itself creates, in order, and we see each of those.
 *
 * The final component is never followed either: files are opened with
 * O_CREAT|O_EXCL|O_NOFOLLOW, mkdir, symlink, link and mknod fail on an
 * existing name, and chown/utimes/setxattr use their l* forms.
 */
class LayerApplier {
  readonly #root: string;
  readonly #logger: Logger;
  // Relative paths known to be real directories ("" is the root). Every
  // ancestor of a member is a member.
  readonly #dirs = new Set<string>(['']);
  // Directory entries' times, set by finish().
  readonly #dirTimes = new Map<string, DirTimes>();
  // Whiteout devices this layer made, by relative path.
  readonly #whiteouts = new Set<string>();
  // Directories this layer marked opaque.
  readonly #opaque = new Set<string>();
  // Hard links whose target has not been seen yet, by target path.
  readonly #pendingLinks = new Map<string, PendingLink[]>();
  // Whether the current entry's data has been read.
  #consumed = false;

  constructor(root: string, logger: Logger) {
    this.#root = path.resolve(root);
    this.#logger = logger;
  }

  /** Applies one entry; returns the file bytes written. */
  async apply(header: TarHeader, tapped: TappedEntry, entry: Entry): Promise<number> {
    try {
      this.#consumed = false;
      // A PAX sparse file's real name (GNU tar puts a made-up one, such
      // as "./GNUSparseFile.0/f", in the header); Go reads it so too.
      const sparseName = header.pax?.['GNU.sparse.name'];
      if (sparseName !== undefined && sparseName !== '') {
        header.name = sparseName;
      }
      const written = await this.#apply(header, tapped, entry);

      // Entries other than files may still carry data (a whiteout with
      // content, say); it must be read before the next header.
      if (!this.#consumed) {
        await drain(entry);
      }
      return written;
    } catch (err) {
      throw entryError(header.name, err);
    }
  }

  /**
   * Fails on hard links whose target never came; then sets directory
   * times, after every entry has been applied.
   */
  finish(): void {
    for (const [targetRel, links] of this.#pendingLinks) {
      const quoted = JSON.stringify(targetRel);
      throw badLayer(links[0].name, `hard link target ${quoted} is not in the layer`);
    }
    for (const [rel, t] of this.#dirTimes) {
      const abs = this.#abs(rel);
      try {
        fs.lutimesSync(abs, t.atime, t.mtime);
      } catch (err) {
        throw entryError(rel, err);
      }
    }
  }

  async #apply(header: TarHeader, tapped: TappedEntry, entry: Entry): Promise<number> {
    const parts = entryComponents(header.name);
    const rel = parts.join('/');

    // The layer root: Docker skips its entry, and so do we; the root's
    // owner and mode are the store's business, not the image's.
    if (parts.length === 0) {
      if (header.type !== 'directory') {
        throw new UnsafePathError(header.name, 'a non-directory entry names the layer root');
      }
      this.#logger.debug(`apply layer entry ${JSON.stringify(header.name)}: skip the root entry`);
      return 0;
    }

    const base = parts[parts.length - 1];
    const parent = parts.slice(0, -1);
    this.#dropPendingLink(rel);
    const whiteout = parseWhiteout(base, header.name);
    if (whiteout !== undefined) {
      this.#applyWhiteout(header.name, parent, whiteout);
      return 0;
    }

    if (!this.#ensureParent(header.name, parent, false)) {
      return 0;
    }

    switch (header.type) {
      case 'directory':
        this.#applyDirectory(rel, header, tapped);
        return 0;
      case 'file':
      case 'contiguous-file':
        return this.#linkPending(rel, await this.#applyFile(rel, header, tapped, entry));
      case 'symlink':
        this.#applySymlink(rel, header, tapped);
        return this.#linkPending(rel, 0);
      case 'link':
        this.#applyHardlink(rel, header);
        return 0;
      case 'character-device':
      case 'block-device':
      case 'fifo':
        this.#applyNode(rel, header, tapped);
        return this.#linkPending(rel, 0);
      default:
        // tar-stream has no type for old GNU sparse files.
        if (tapped.typeflag === 'S') {
          return this.#linkPending(rel, await this.#applyFile(rel, header, tapped, entry));
        }
        throw new NotImplementedTypeError(tapped.typeflag);
    }
  }

  #abs(rel: string): string {
    return rel === '' ? this.#root : `${this.#root}/${rel}`;
  }

  /**
   * Makes sure every component of parent is a real directory, creating
   * missing ones 0755 root. Throws UnsafePathError for a symlink among
   * them. Returns false when the entry is a whiteout under a directory
   * this layer itself whited out, which makes it redundant.
   */
  #ensureParent(entryName: string, parent: string[], forWhiteout: boolean): boolean {
    const full = parent.join('/');
    if (this.#dirs.has(full)) {
      return true;
    }

    let rel = '';
    for (const part of parent) {
      rel = rel === '' ? part : `${rel}/${part}`;
      if (this.#dirs.has(rel)) {
        continue;
      }

      const abs = this.#abs(rel);
      const st = lstatOrUndefined(abs);
      if (st === undefined) {
        mkdirExact(abs, 0o755);
      } else if (st.isSymbolicLink()) {
        const why = `path goes through symlink ${JSON.stringify(rel)} of this layer`;
        throw new UnsafePathError(entryName, why);
      } else if (this.#whiteouts.has(rel)) {
        // The layer deleted rel and now puts things under it: a whiteout
        // there is moot; anything else recreates rel as a new directory,
        // opaque because the old one (in lower layers) was deleted.
        if (forWhiteout) {
          return false;
        }
        fs.unlinkSync(abs);
        this.#whiteouts.delete(rel);
        mkdirExact(abs, 0o755);
        this.#markOpaque(rel);
      } else if (!st.isDirectory()) {
        throw badLayer(entryName, `${JSON.stringify(rel)} is not a directory`);
      }
      this.#dirs.add(rel);
    }
    return true;
  }

  /**
   * Whiteouts. What Docker's overlay2 applier does (pkg/archive,
   * overlayWhiteoutConverter.ConvertRead): `.wh..wh..opq` sets the opaque
   * xattr on its directory; `.wh.NAME` mknods a 0/0 char device NAME and
   * fails if NAME exists; an entry that comes later with the same name
   * removes the device and takes its place, like any replaced entry.
   *
   * image-spec layer.md says a whiteout applies only to lower layers, never
   * to entries of its own layer. We follow Docker for whiteout-then-entry,
   * and differ in two places so the result does not depend on tar order:
   * a whiteout for a name this layer already created keeps that entry
   * (Docker fails the layer with EEXIST), and when the surviving entry is a
   * directory we also mark it opaque, because the lower directory it
   * replaces was deleted and its children must not show through (Docker
   * leaves them visible when the directory comes second).
   */
  #applyWhiteout(entryName: string, parent: string[], whiteout: NonNullable<Whiteout>): void {
    if (whiteout.kind === 'aufs-meta') {
      this.#logger.warn(`apply layer entry ${JSON.stringify(entryName)}: ignore aufs metadata`);
      return;
    }
    if (!this.#ensureParent(entryName, parent, true)) {
      this.#logger.debug(`apply layer entry ${JSON.stringify(entryName)}: parent is whited out`);
      return;
    }

    const parentRel = parent.join('/');
    if (whiteout.kind === 'opaque') {
      this.#markOpaque(parentRel);
      return;
    }
    if (this.#underOpaque(parentRel)) {
      const where = JSON.stringify(entryName);
      this.#logger.debug(`apply layer entry ${where}: under an opaque directory`);
      return;
    }

    const rel = parentRel === '' ? whiteout.target : `${parentRel}/${whiteout.target}`;
    const abs = this.#abs(rel);
    try {
      mknod(abs, S_IFCHR, 0n);
      this.#whiteouts.add(rel);
      return;
    } catch (err) {
      if (errnoCode(err) !== 'EEXIST') {
        throw err;
      }
    }

    // rel is this layer's own entry: keep it (see above).
    if (this.#dirs.has(rel)) {
      this.#markOpaque(rel);
    }
  }

  /**
   * Marks the directory rel opaque, and removes the whiteouts this layer
   * made below it. They are moot (nothing below an opaque directory shows
   * through), and harmful: overlayfs reads an opaque directory as a plain
   * one, so its whiteout devices would be listed by readdir as names that
   * cannot be opened. Later whiteouts below rel are skipped likewise.
   */
  #markOpaque(rel: string): void {
    lsetxattr(this.#abs(rel), opaqueXattr, Buffer.from('y'));
    this.#opaque.add(rel);
    const prefix = rel === '' ? '' : `${rel}/`;
    for (const w of this.#whiteouts) {
      if (w.startsWith(prefix)) {
        fs.unlinkSync(this.#abs(w));
        this.#whiteouts.delete(w);
      }
    }
  }

  /** Whether rel is, or is below, a directory this layer made opaque. */
  #underOpaque(rel: string): boolean {
    if (this.#opaque.has('')) {
      return true;
    }
    let at = rel;
    while (at !== '') {
      if (this.#opaque.has(at)) {
        return true;
      }
      const slash = at.lastIndexOf('/');
      at = slash < 0 ? '' : at.slice(0, slash);
    }
    return false;
  }

  /**
   * Frees the name rel for a new entry: removes what an earlier entry of
   * this layer put there, unless both are directories, which merge. Says
   * whether they merge and whether what was removed was a whiteout. rel's
   * parent must be verified already.
   */
  #clear(rel: string, forDirectory: boolean): { merge: boolean; wasWhiteout: boolean } {
    const abs = this.#abs(rel);
    const st = lstatOrUndefined(abs);
    if (st === undefined) {
      return { merge: false, wasWhiteout: false };
    }
    if (forDirectory && st.isDirectory()) {
      return { merge: true, wasWhiteout: false };
    }

    const wasWhiteout = this.#whiteouts.delete(rel);
    if (st.isDirectory()) {
      this.#forgetTree(rel);
      fs.rmSync(abs, { recursive: true, force: true });
    } else {
      fs.unlinkSync(abs);
    }
    return { merge: false, wasWhiteout };
  }

  #forgetTree(rel: string): void {
    const prefix = `${rel}/`;
    for (const set of [this.#dirs, this.#whiteouts, this.#opaque]) {
      for (const p of set) {
        if (p === rel || p.startsWith(prefix)) {
          set.delete(p);
        }
      }
    }
    for (const p of this.#dirTimes.keys()) {
      if (p === rel || p.startsWith(prefix)) {
        this.#dirTimes.delete(p);
      }
    }
  }

  #applyDirectory(rel: string, header: TarHeader, tapped: TappedEntry): void {
    const abs = this.#abs(rel);
    try {
      fs.mkdirSync(abs, 0o700);
    } catch (err) {
      if (errnoCode(err) !== 'EEXIST') {
        throw err;
      }
      const { merge, wasWhiteout } = this.#clear(rel, true);
      if (!merge) {
        fs.mkdirSync(abs, 0o700);
        if (wasWhiteout) {
          this.#markOpaque(rel);
        }
      }
    }
    this.#dirs.add(rel);

    const meta = metadataOf(header, tapped);
    fs.lchownSync(abs, meta.uid, meta.gid);
    fs.chmodSync(abs, meta.mode);
    this.#setXattrs(rel, meta.xattrs);
    this.#dirTimes.set(rel, { atime: meta.atime, mtime: meta.mtime });
  }

  async #applyFile(
    rel: string,
    header: TarHeader,
    tapped: TappedEntry,
    entry: Entry,
  ): Promise<number> {
    const abs = this.#abs(rel);
    const flags = O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW;
    let fd: number;
    try {
      fd = fs.openSync(abs, flags, 0o600);
    } catch (err) {
      if (errnoCode(err) !== 'EEXIST') {
        throw err;
      }
      this.#clear(rel, false);
      fd = fs.openSync(abs, flags, 0o600);
    }

    let written = 0;
    this.#consumed = true;
    try {
      const size = header.size ?? 0;
      const sparse = sparseSpecOf(header.pax, tapped);
      if (sparse !== undefined) {
        written = await writeSparse(fd, readEntry(entry), sparse);
      } else if (size <= smallFile) {
        const chunks: Buffer[] = [];
        for await (const chunk of readEntry(entry)) {
          chunks.push(chunk);
        }
        written = writeAll(fd, chunks.length === 1 ? chunks[0] : Buffer.concat(chunks));
      } else {
        // Backpressure comes from awaiting each chunk before asking for
        // the next: at most one chunk is held at a time.
        for await (const chunk of readEntry(entry)) {
          written += writeAll(fd, chunk);
        }
      }

      const meta = metadataOf(header, tapped);
      // chown clears setuid/setgid, and security.capability, so chmod and
      // the xattrs come after it.
      fs.fchownSync(fd, meta.uid, meta.gid);
      fs.fchmodSync(fd, meta.mode);
      this.#setXattrs(rel, meta.xattrs);
      fs.futimesSync(fd, meta.atime, meta.mtime);
    } finally {
      fs.closeSync(fd);
    }
    return written;
  }

  #applySymlink(rel: string, header: TarHeader, tapped: TappedEntry): void {
    const abs = this.#abs(rel);
    const target = header.linkname ?? '';

    // The target is stored as written, absolute or relative: it is only
    // ever followed inside the container, against the container's root.
    try {
      fs.symlinkSync(target, abs);
    } catch (err) {
      if (errnoCode(err) !== 'EEXIST') {
        throw err;
      }
      this.#clear(rel, false);
      fs.symlinkSync(target, abs);
    }

    const meta = metadataOf(header, tapped);
    fs.lchownSync(abs, meta.uid, meta.gid);
    this.#setXattrs(rel, meta.xattrs);
    fs.lutimesSync(abs, meta.atime, meta.mtime);
  }

  /**
   * A hard link to an earlier entry of this layer. The target name is
   * resolved like an entry name, inside the layer root, and must not pass
   * through a symlink. A target that is itself a symlink is linked as the
   * symlink (link(2) does not follow it on Linux). The link shares the
   * target's inode, so the link entry's own metadata is not applied.
   */
  #applyHardlink(rel: string, header: TarHeader): void {
    const linkname = header.linkname ?? '';
    const parts = entryComponents(linkname, header.name, 'hard link target');
    if (parts.length === 0) {
      throw new UnsafePathError(header.name, 'hard link to the layer root');
    }
    const targetRel = parts.join('/');
    if (targetRel === rel) {
      this.#logger.debug(`apply layer entry ${JSON.stringify(header.name)}: hard link to itself`);
      return;
    }

    const targetSeen = this.#checkExistingParent(header.name, parts.slice(0, -1));
    const target = this.#abs(targetRel);
    const st = targetSeen ? lstatOrUndefined(target) : undefined;
    if (st === undefined || this.#pendingLinks.has(targetRel)) {
      // A target later in the tar: link when it comes (see linkPending).
      const links = this.#pendingLinks.get(targetRel) ?? [];
      links.push({ rel, name: header.name });
      this.#pendingLinks.set(targetRel, links);
      return;
    }
    this.#link(rel, header.name, targetRel, st);
  }

  /**
   * Links rel to targetRel, an entry of this layer that exists now, then
   * the links that were waiting for rel. rel's parent must be verified.
   */
  #link(rel: string, entryName: string, targetRel: string, st: fs.Stats): void {
    if (st.isDirectory()) {
      throw badLayer(entryName, `hard link target ${JSON.stringify(targetRel)} is a directory`);
    }
    const target = this.#abs(targetRel);
    const abs = this.#abs(rel);
    try {
      fs.linkSync(target, abs);
    } catch (err) {
      if (errnoCode(err) !== 'EEXIST') {
        throw err;
      }
      this.#clear(rel, false);
      fs.linkSync(target, abs);
    }
    if (this.#whiteouts.has(targetRel)) {
      this.#whiteouts.add(rel);
    }
    this.#linkPending(rel, 0);
  }

  /**
   * Creates the hard links that were waiting for rel, just created, as if
   * each came right after it in the tar: its parent is checked (and made)
   * again now, since entries in between may have changed it. Returns
   * passThrough, for the caller's convenience.
   *
   * Docker and umoci fail a layer whose hard link comes before its target
   * (link(2) finds nothing); GNU tar and Go's writer never write one. We
   * accept it, as the tar still says which names share one file.
   */
  #linkPending(rel: string, passThrough: number): number {
    const links = this.#pendingLinks.get(rel);
    if (links === undefined) {
      return passThrough;
    }
    this.#pendingLinks.delete(rel);
    const st = fs.lstatSync(this.#abs(rel));
    for (const link of links) {
      const parts = entryComponents(link.name);
      this.#ensureParent(link.name, parts.slice(0, -1), false);
      this.#link(link.rel, link.name, rel, st);
    }
    return passThrough;
  }

  // A later entry named rel replaces a hard link to rel that still waits.
  #dropPendingLink(rel: string): void {
    for (const [targetRel, links] of this.#pendingLinks) {
      const kept = links.filter((l) => l.rel !== rel);
      if (kept.length === 0) {
        this.#pendingLinks.delete(targetRel);
      } else if (kept.length !== links.length) {
        this.#pendingLinks.set(targetRel, kept);
      }
    }
  }

  /**
   * Like ensureParent, for a hard link target's parent: true when each
   * component is a real directory, false when one is missing (the target
   * may come later). Throws for a symlink or a non-directory among them.
   */
  #checkExistingParent(entryName: string, parent: string[]): boolean {
    let rel = '';
    for (const part of parent) {
      rel = rel === '' ? part : `${rel}/${part}`;
      if (this.#dirs.has(rel)) {
        continue;
      }
      const st = lstatOrUndefined(this.#abs(rel));
      if (st === undefined) {
        return false;
      }
      if (st.isSymbolicLink()) {
        const why = `hard link target goes through symlink ${JSON.stringify(rel)}`;
        throw new UnsafePathError(entryName, why);
      }
      const quoted = JSON.stringify(rel);
      throw badLayer(entryName, `hard link target directory ${quoted} is not a directory`);
    }
    return true;
  }

  #applyNode(rel: string, header: TarHeader, tapped: TappedEntry): void {
    const abs = this.#abs(rel);
    const type = nodeTypes[header.type as 'fifo'];
    const dev = type === S_IFIFO ? 0n : makedev(header.devmajor ?? 0, header.devminor ?? 0);

    try {
      mknod(abs, type | 0o600, dev);
    } catch (err) {
      if (errnoCode(err) !== 'EEXIST') {
        throw err;
      }
      this.#clear(rel, false);
      mknod(abs, type | 0o600, dev);
    }

    const meta = metadataOf(header, tapped);
    fs.lchownSync(abs, meta.uid, meta.gid);
    fs.chmodSync(abs, meta.mode);
    this.#setXattrs(rel, meta.xattrs);
    fs.lutimesSync(abs, meta.atime, meta.mtime);
  }

  /**
   * Sets the entry's xattrs byte for byte. trusted.overlay.* is refused:
   * only whiteout translation may speak to overlayfs, or a layer could
   * forge redirects and opaque markers. Where the filesystem or kernel
   * will not take an xattr (ENOTSUP, EPERM: user.* on a symlink, for one)
   * we warn and go on, as Docker does.
   */
  #setXattrs(rel: string, xattrs: Map<string, Buffer>): void {
    for (const [name, value] of xattrs) {
      if (name.startsWith('trusted.overlay.')) {
        this.#logger.warn(`apply layer entry ${JSON.stringify(rel)}: ignore xattr ${name}`);
        continue;
      }
      try {
        lsetxattr(this.#abs(rel), name, value);
      } catch (err) {
        const code = errnoCode(err);
        if (code !== 'ENOTSUP' && code !== 'EOPNOTSUPP' && code !== 'EPERM') {
          throw err;
        }
        const why = messageOf(err);
        this.#logger.warn(`apply layer entry ${JSON.stringify(rel)}: ignore xattr ${name}: ${why}`);
      }
    }
  }
}

const nodeTypes = { 'character-device': S_IFCHR, 'block-device': S_IFBLK, fifo: S_IFIFO };

// A layer that is malformed (not hostile): the entry cannot be applied.
function badLayer(entryName: string, why: string): MinidockError {
  const where = JSON.stringify(entryName);
  return new MinidockError('ERR_BAD_LAYER', `apply layer entry ${where}: ${why}`);
}

/** An entry's ownership, mode, times and xattrs, PAX overrides applied. */
interface Metadata {
  uid: number;
  gid: number;
  mode: number;
  atime: number;
  mtime: number;
  xattrs: Map<string, Buffer>;
}

const xattrPrefix = 'SCHILY.xattr.';
const maxOwnerId = 2 ** 32 - 2;

function metadataOf(header: TarHeader, tapped: TappedEntry): Metadata {
  const pax = header.pax ?? {};
  const mtime = paxTime(pax.mtime) ?? (header.mtime?.getTime() ?? 0) / 1000;
  const meta: Metadata = {
    uid: paxInt(pax.uid) ?? header.uid ?? 0,
    gid: paxInt(pax.gid) ?? header.gid ?? 0,
    mode: (header.mode ?? 0o644) & 0o7777,
    atime: paxTime(pax.atime) ?? mtime,
    mtime,
    xattrs: new Map(),
  };
  for (const [field, id] of [['uid', meta.uid], ['gid', meta.gid]] as const) {
    // chown(2) takes 32 bits, and (uid_t)-1 means "leave unchanged".
    if (!Number.isSafeInteger(id) || id < 0 || id > maxOwnerId) {
      throw badLayer(header.name, `${field} ${pax[field] ?? id} is out of range (0 to ${maxOwnerId})`);
    }
  }

  // Global records first, so the entry's own override them. tar-stream
  // does the same merge for the decoded fields used above.
  for (const raw of [tapped.globalPax, tapped.pax]) {
    if (raw === undefined) {
      continue;
    }
    for (const r of parsePaxRecords(raw)) {
      if (r.key.startsWith(xattrPrefix) && r.key.length > xattrPrefix.length) {
        meta.xattrs.set(r.key.slice(xattrPrefix.length), r.value);
      }
    }
  }
  return meta;
}

function paxInt(s: string | undefined): number | undefined {
  if (s === undefined || !/^\d+$/.test(s)) {
    return undefined;
  }
  return Number(s);
}

function paxTime(s: string | undefined): number | undefined {
  if (s === undefined || !/^-?\d+(\.\d+)?$/.test(s)) {
    return undefined;
  }
  return Number(s);
}

// mkdir, then chmod, so a restrictive umask does not narrow the mode.
function mkdirExact(abs: string, mode: number): void {
  fs.mkdirSync(abs, mode);
  fs.chmodSync(abs, mode);
}

function writeAll(fd: number, buf: Buffer): number {
  let off = 0;
  while (off < buf.length) {
    off += fs.writeSync(fd, buf, off, buf.length - off);
  }
  return buf.length;
}

async function drain(entry: Entry): Promise<void> {
  for await (const _chunk of readEntry(entry)) {
    // discard
  }
}

// An entry's data chunks. A failure here is the tar stream's (truncated,
// corrupt, or an upstream error), so it is reported as reading the tar.
async function* readEntry(entry: Entry): AsyncGenerator<Buffer> {
  const it = entry[Symbol.asyncIterator]();
  for (;;) {
    let next: IteratorResult<unknown>;
    try {
      next = await it.next();
    } catch (err) {
      throw wrapReadError(err, undefined);
    }
    if (next.done) {
      return;
    }
    yield next.value as Buffer;
  }
}

function lstatOrUndefined(abs: string): fs.Stats | undefined {
  try {
    return fs.lstatSync(abs);
  } catch (err) {
    if (errnoCode(err) === 'ENOENT') {
      return undefined;
    }
    throw err;
  }
}

function errnoCode(err: unknown): string | undefined {
  if (err instanceof Error) {
    const e = err as Error & { code?: unknown; errnoCode?: unknown };
    if (typeof e.errnoCode === 'string') {
      return e.errnoCode;
    }
    if (typeof e.code === 'string') {
      return e.code;
    }
  }
  return undefined;
}

class NotImplementedTypeError extends Error {
  constructor(readonly typeflag: string) {
    super(`tar entry type ${JSON.stringify(typeflag)}`);
  }
}

// Wraps a failure with the entry's name; UnsafePathError and other
// MinidockErrors already carry it and pass unchanged.
function entryError(name: string, err: unknown): unknown {
  if (err instanceof MinidockError) {
    return err;
  }
  if (err instanceof NotImplementedTypeError) {
    return notImplementedType(name, err.typeflag);
  }
  if (err instanceof BadSparseError) {
    return badLayer(name, err.message);
  }
  const where = JSON.stringify(name);
  return new MinidockError('ERR_UNPACK', `apply layer entry ${where}: ${messageOf(err)}`, {
    cause: err,
  });
}

const typeNames: Record<string, string> = {
  D: 'GNU dump directory',
  M: 'GNU multi-volume continuation',
  V: 'GNU volume header',
};

function notImplementedType(name: string, typeflag: string): MinidockError {
  const known = typeNames[typeflag];
  const what = known === undefined ? `type ${JSON.stringify(typeflag)}` : known;
  return new NotImplementedError(`tar entry ${what} (entry ${JSON.stringify(name)})`, {
    hint: 'repack the layer without GNU-only entries (Go archive/tar, GNU tar -H posix)',
  });
}
