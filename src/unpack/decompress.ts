/**
 * Decompressing layer blobs into the tar stream applyLayer reads.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { Duplex, PassThrough, type Transform } from 'node:stream';
import zlib from 'node:zlib';
import { MinidockError, NotImplementedError } from '../errors.js';
import type { Compression } from '../image/index.js';

// node:zlib gained zstd in Node 23.8 and 22.15; @types/node 20 does not
// declare it, so it is looked up at run time.
type ZstdZlib = { createZstdDecompress?: () => Transform };

// Output buffer per inflate call. zlib's 16 KiB default means one trip
// through the threadpool, and one callback on the main thread, per 16 KiB
// of tar; 256 KiB cuts that sixteenfold and still bounds memory.
const gunzipChunkSize = 256 * 1024;

/**
 * Where the zstd command is looked for when node:zlib has no zstd (Debian's
 * zstd package installs /usr/bin/zstd).
 */
export const zstdCommandPaths = ['/usr/bin/zstd', '/usr/local/bin/zstd', '/bin/zstd'];

function zlibZstd(): (() => Transform) | undefined {
  const create = (zlib as unknown as ZstdZlib).createZstdDecompress;
  return typeof create === 'function' ? () => create.call(zlib) : undefined;
}

function zstdCommand(): string | undefined {
  return zstdCommandPaths.find((p) => existsSync(p));
}

/**
 * Throws NotImplementedError when layers compressed with `compression`
 * cannot be decompressed here: zstd needs node:zlib's (Node 22.15 and
 * later) or the zstd command. Cheap; pull calls it before downloading.
 */
export function checkDecompressor(compression: Compression): void {
  if (compression !== 'zstd' || zlibZstd() !== undefined || zstdCommand() !== undefined) return;
  throw new NotImplementedError('zstd-compressed layers', {
    hint:
      `this Node.js (${process.version}) has no zstd in node:zlib and no zstd command was found ` +
      `(${zstdCommandPaths.join(', ')}); install zstd (apt-get install zstd) or run minidock on Node.js 22.15 or later`,
  });
}

/**
 * Returns a new stream that turns a layer blob compressed with
 * `compression` into its uncompressed tar. The caller owns the stream.
 * zstd uses node:zlib where it has zstd, else the zstd command as a
 * streaming subprocess (see docs/decisions.md); throws NotImplementedError
 * when neither is there (see checkDecompressor).
 */
export function decompressor(compression: Compression): Transform | Duplex {
  switch (compression) {
    case 'none':
      return new PassThrough();
    case 'gzip':
      return zlib.createGunzip({ chunkSize: gunzipChunkSize });
    case 'zstd': {
      checkDecompressor(compression);
      const fromZlib = zlibZstd();
      return fromZlib !== undefined ? fromZlib() : new ZstdProcess(zstdCommand()!);
    }
  }
}

/**
 * `zstd -d` as a Duplex: compressed bytes in, the tar out, with
 * backpressure both ways. A non-zero exit is an error carrying the end of
 * zstd's stderr; destroying the stream kills the process.
 */
export class ZstdProcess extends Duplex {
  readonly #child: ChildProcess;
  #stderr = '';

  constructor(command: string) {
    super();
    // --no-check is not given: zstd verifies the frame's own checksum too.
    const child = spawn(command, ['-d', '-c', '-q'], { stdio: ['pipe', 'pipe', 'pipe'] });
    this.#child = child;
    child.stdout!.on('data', (chunk: Buffer) => {
      if (!this.push(chunk)) child.stdout!.pause();
    });
    child.stderr!.setEncoding('utf8');
    child.stderr!.on('data', (t: string) => {
      this.#stderr = (this.#stderr + t).slice(-1024);
    });
    // zstd may exit before reading all its input (corrupt data): the
    // broken pipe is reported through the exit status below.
    child.stdin!.on('error', () => {});
    child.on('error', (err) => this.destroy(new MinidockError('ERR_DECOMPRESS', `run ${command}: ${err.message}`)));
    child.on('close', (code, signal) => {
      if (code === 0) {
        this.push(null);
        return;
      }
      const why = this.#stderr.trim().split('\n').at(-1)?.replace(/^zstd: (\/\*stdin\*\\: )?/, '');
      const status = signal !== null ? `signal ${signal}` : `exit status ${code}`;
      this.destroy(new MinidockError('ERR_DECOMPRESS', `zstd: ${why || status}`));
    });
  }

  /** The zstd process's id. */
  get pid(): number | undefined {
    return this.#child.pid;
  }

  override _read(): void {
    this.#child.stdout!.resume();
  }

  override _write(chunk: Buffer, _enc: BufferEncoding, done: (err?: Error | null) => void): void {
    if (this.#child.stdin!.write(chunk)) done();
    else this.#child.stdin!.once('drain', () => done());
  }

  override _final(done: (err?: Error | null) => void): void {
    this.#child.stdin!.end(() => done());
  }

  override _destroy(err: Error | null, done: (err?: Error | null) => void): void {
    if (this.#child.exitCode === null && this.#child.signalCode === null) this.#child.kill('SIGKILL');
    done(err);
  }
}
