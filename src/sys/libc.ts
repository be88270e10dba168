/**
 * Bindings to the few libc calls Node's fs lacks, through koffi.
 *
 * This is the only module that loads koffi. It does so on the first call,
 * not at import time, so commands that never touch these calls (`--help`,
 * `history`) do not pay for loading the native addon and libc's symbols.
 *
 * Every binding is synchronous: each is one cheap syscall, and a call
 * through the thread pool would cost more than the syscall itself. On
 * failure a binding throws SyscallError carrying errno and its text.
 *
 * Limitations: glibc only (libc.so.6); paths are passed as UTF-8 strings.
 */
import { createRequire } from 'node:module';
import { getSystemErrorName } from 'node:util';
import { MinidockError } from '../errors.js';

type Koffi = typeof import('koffi');
type Fn = (...args: unknown[]) => number | bigint;

interface Libc {
  koffi: Koffi;
  strerror: (errno: number) => string;
  mknod: Fn;
  lsetxattr: Fn;
  lgetxattr: Fn;
  llistxattr: Fn;
  flock: Fn;
  opendir: Fn;
  readdir: (dir: unknown) => { d_type: number; d_name: string } | null;
  closedir: Fn;
}

/** A libc call that returned -1; `errno` and `errnoCode` say why. */
export class SyscallError extends MinidockError {
  /** The errno value, such as 17. */
  readonly errno: number;
  /** The errno name, such as "EEXIST". */
  readonly errnoCode: string;

  constructor(readonly syscall: string, readonly path: string, errno: number, text: string) {
    super('ERR_SYSCALL', `${syscall} ${JSON.stringify(path)}: ${lowerFirst(text)}`);
    this.name = 'SyscallError';
    this.errno = errno;
    this.errnoCode = errnoName(errno);
  }
}

let libc: Libc | undefined;

function load(): Libc {
  if (libc !== undefined) {
    return libc;
  }

  const koffi = createRequire(import.meta.url)('koffi') as Koffi;
  const lib = koffi.load('libc.so.6');
  libc = {
    koffi,
    strerror: lib.func('const char *strerror(int errnum)') as (errno: number) => string,
    mknod: bindMknod(lib),
    lsetxattr: lib.func(
      'int lsetxattr(const char *path, const char *name, const void *value, size_t size, ' +
        'int flags)',
    ),
    lgetxattr: lib.func(
      'intptr_t lgetxattr(const char *path, const char *name, void *value, size_t size)',
    ),
    llistxattr: lib.func('intptr_t llistxattr(const char *path, void *list, size_t size)'),
    flock: lib.func('int flock(int fd, int operation)'),
    ...bindReaddir(koffi, lib),
  };
  return libc;
}

// struct dirent as glibc lays it out on 64-bit Linux (readdir64's).
function bindReaddir(koffi: Koffi, lib: ReturnType<Koffi['load']>) {
  const dirent = koffi.struct('minidock_dirent', {
    d_ino: 'uint64',
    d_off: 'int64',
    d_reclen: 'uint16',
    d_type: 'uint8',
    d_name: koffi.array('char', 256, 'String'),
  });
  const readdir = lib.func('readdir', koffi.pointer(dirent), ['void *']);
  return {
    opendir: lib.func('void *opendir(const char *name)'),
    readdir: (dir: unknown) => {
      const ptr = readdir(dir);
      return ptr ? (koffi.decode(ptr, dirent) as { d_type: number; d_name: string }) : null;
    },
    closedir: lib.func('int closedir(void *dir)'),
  };
}

// glibc 2.33 made mknod a real exported symbol; before that the header
// inlined it as __xmknod(_MKNOD_VER, ...). glibc 2.36 (Debian 12) exports
// both, __xmknod only for binaries linked against old versions, so mknod is
// tried first. _MKNOD_VER is 0 on x86_64 and was never used elsewhere by
// the architectures minidock runs on.
function bindMknod(lib: ReturnType<Koffi['load']>): Fn {
  try {
    return lib.func('int mknod(const char *path, uint32_t mode, uint64_t dev)');
  } catch (err) {
    if (process.arch !== 'x64') {
      throw err;
    }
    const xmknod = lib.func(
      'int __xmknod(int ver, const char *path, uint32_t mode, const uint64_t *dev)',
    );
    return (path, mode, dev) => xmknod(0, path, mode, [dev]);
  }
}

function fail(syscall: string, path: string): never {
  const { koffi, strerror } = load();
  const errno = koffi.errno();
  throw new SyscallError(syscall, path, errno, strerror(errno));
}

function errnoName(errno: number): string {
  try {
    return getSystemErrorName(-errno);
  } catch {
    return `errno ${errno}`;
  }
}

function lowerFirst(s: string): string {
  return s.length > 0 ? s[0].toLowerCase() + s.slice(1) : s;
}

/** File type bits for mknod's mode, as in <sys/stat.h>. */
export const S_IFCHR = 0o020000;
export const S_IFBLK = 0o060000;
export const S_IFIFO = 0o010000;

/**
 * Returns the dev_t for a device number, as glibc's makedev() encodes it
 * (12 bits of major and 20 of minor in the low word, the rest above).
 */
export function makedev(major: number, minor: number): bigint {
  const ma = BigInt(major >>> 0);
  const mi = BigInt(minor >>> 0);
  return (
    ((ma & 0xfffff000n) << 32n) |
    ((ma & 0xfffn) << 8n) |
    ((mi & 0xffffff00n) << 12n) |
    (mi & 0xffn)
  );
}

/** Splits a dev_t (as fs.Stats.rdev gives it) into major and minor. */
export function splitDev(dev: number | bigint): { major: number; minor: number } {
  const d = BigInt(dev);
  const major = ((d >> 8n) & 0xfffn) | ((d >> 32n) & ~0xfffn);
  const minor = (d & 0xffn) | ((d >> 12n) & ~0xffn);
  return { major: Number(major), minor: Number(minor) };
}

/**
 * Creates a device node or fifo at path, not following a symlink there
 * (mknod fails with EEXIST on any existing name). mode holds the file type
 * (S_IFCHR, S_IFBLK, S_IFIFO) and permission bits, which the umask trims.
 * Throws SyscallError.
 */
export function mknod(path: string, mode: number, dev: bigint = 0n): void {
  if (load().mknod(path, mode, dev) !== 0) {
    fail('mknod', path);
  }
}

/**
 * Sets the extended attribute name of path to exactly the bytes of value,
 * on a symlink itself rather than its target. Throws SyscallError.
 */
export function lsetxattr(path: string, name: string, value: Uint8Array, flags = 0): void {
  if (load().lsetxattr(path, name, value, value.byteLength, flags) !== 0) {
    fail(`lsetxattr ${name}`, path);
  }
}

const ENODATA = 61;
const ERANGE = 34;

/**
 * Returns the bytes of path's extended attribute name (not following a
 * symlink), or undefined when path has no such attribute. Throws
 * SyscallError for anything else.
 */
export function lgetxattr(path: string, name: string): Buffer | undefined {
  const { lgetxattr: get, koffi } = load();

  // Ask for the size, then read; retry if it grew in between.
  for (let attempt = 0; attempt < 4; attempt++) {
    const size = Number(get(path, name, null, 0));
    if (size < 0) {
      if (koffi.errno() === ENODATA) {
        return undefined;
      }
      fail(`lgetxattr ${name}`, path);
    }

    const buf = Buffer.alloc(size);
    const got = Number(get(path, name, buf, size));
    if (got >= 0) {
      return buf.subarray(0, got);
    }
    if (koffi.errno() !== ERANGE) {
      fail(`lgetxattr ${name}`, path);
    }
  }
  const where = JSON.stringify(path);
  throw new MinidockError('ERR_SYSCALL', `lgetxattr ${name} ${where}: keeps changing size`);
}

/** Returns the names of path's extended attributes (not following a symlink). */
export function llistxattr(path: string): string[] {
  const { llistxattr: list, koffi } = load();

  for (let attempt = 0; attempt < 4; attempt++) {
    const size = Number(list(path, null, 0));
    if (size < 0) {
      fail('llistxattr', path);
    }
    if (size === 0) {
      return [];
    }

    const buf = Buffer.alloc(size);
    const got = Number(list(path, buf, size));
    if (got >= 0) {
      return buf.subarray(0, got).toString('utf8').split('\0').filter((s) => s !== '');
    }
    if (koffi.errno() !== ERANGE) {
      fail('llistxattr', path);
    }
  }
  throw new MinidockError('ERR_SYSCALL', `llistxattr ${JSON.stringify(path)}: keeps changing size`);
}

/** flock(2) operations. */
export const LOCK_SH = 1;
export const LOCK_EX = 2;
export const LOCK_NB = 4;
const EWOULDBLOCK = 11;
const EINTR = 4;

/**
 * Takes an flock(2) on the open file fd without waiting: exclusive, or
 * shared with other shared holders. Returns false when another open file
 * holds a conflicting lock. The kernel drops the lock when the file is
 * closed or its process dies, however it dies. `path` only names the file
 * in errors. Throws SyscallError.
 */
export function tryFlock(fd: number, path: string, mode: 'shared' | 'exclusive'): boolean {
  const { flock, koffi } = load();
  const op = (mode === 'shared' ? LOCK_SH : LOCK_EX) | LOCK_NB;
  for (;;) {
    if (flock(fd, op) === 0) {
      return true;
    }
    const errno = koffi.errno();
    if (errno === EWOULDBLOCK) {
      return false;
    }
    if (errno !== EINTR) {
      fail('flock', path);
    }
  }
}

/** d_type when the filesystem does not say (struct dirent). */
export const DT_UNKNOWN = 0;

/**
 * Returns the d_type that readdir(3) reports for the entry `name` of
 * directory dir (DT_UNKNOWN, 0, on a filesystem that does not record file
 * types), or undefined when dir has no such entry. Throws SyscallError.
 */
export function direntType(dir: string, name: string): number | undefined {
  const { opendir, readdir, closedir } = load();
  const handle = opendir(dir);
  if (!handle) {
    fail('opendir', dir);
  }
  try {
    for (let entry = readdir(handle); entry !== null; entry = readdir(handle)) {
      if (entry.d_name === name) {
        return entry.d_type;
      }
    }
    return undefined;
  } finally {
    closedir(handle);
  }
}
