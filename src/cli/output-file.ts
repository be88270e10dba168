/**
 * Where `save -o` and `export -o` write: a regular file is written beside
 * its final name and renamed into place, so a failed command leaves no half
 * file; anything else that exists (/dev/null, a fifo, a terminal device) is
 * written in place and never replaced or removed.
 */
import { open, rename, stat, unlink } from 'node:fs/promises';
import type { Writable } from 'node:stream';
import { MinidockError } from '../errors.js';

/**
 * Opens path for writing and runs write with a stream into it; write must
 * end the stream (a pipeline does). `op` names the command in errors
 * ("save", "export busybox"). Errors are one line naming the path.
 */
export async function writeOutputFile(op: string, path: string, write: (out: Writable) => Promise<void>): Promise<void> {
  const fail = (err: unknown): never => {
    if (err instanceof MinidockError) throw err;
    const e = err as NodeJS.ErrnoException;
    const why =
      e.code === 'ENOENT' ? 'its directory does not exist' : e.code === 'EISDIR' ? 'it is a directory' : e.message;
    throw new MinidockError('ERR_OUTPUT', `${op} to ${JSON.stringify(path)}: ${why}`, { cause: err });
  };
  const existing = await stat(path).catch(() => undefined);
  if (existing?.isDirectory()) fail(Object.assign(new Error('is a directory'), { code: 'EISDIR' }));
  const inPlace = existing !== undefined && !existing.isFile();
  const target = inPlace ? path : `${path}.tmp-${process.pid}`;

  const fh = await open(target, 'w', 0o644).catch(fail);
  try {
    await write(fh.createWriteStream());
    if (!inPlace) await rename(target, path);
  } catch (err) {
    if (!inPlace) await unlink(target).catch(() => {});
    fail(err);
  } finally {
    await fh.close().catch(() => {});
  }
}
