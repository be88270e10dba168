/**
 * Decompressing layer blobs into the tar stream applyLayer reads.
 */
import { PassThrough, type Transform } from 'node:stream';
import zlib from 'node:zlib';
import { NotImplementedError } from '../errors.js';
import type { Compression } from '../image/index.js';

// node:zlib gained zstd in Node 23.8 and 22.15; @types/node 20 does not
// declare it, so it is looked up at run time.
type ZstdZlib = { createZstdDecompress?: () => Transform };

// Output buffer per inflate call. zlib's 16 KiB default means one trip
// through the threadpool, and one callback on the main thread, per 16 KiB
// of tar; 256 KiB cuts that sixteenfold and still bounds memory.
const gunzipChunkSize = 256 * 1024;

/**
 * Returns a new stream that turns a layer blob compressed with
 * `compression` into its uncompressed tar. The caller owns the stream.
 * Throws NotImplementedError for zstd on a Node without zstd in node:zlib
 * (Node 20 has none).
 */
export function decompressor(compression: Compression): Transform {
  switch (compression) {
    case 'none':
      return new PassThrough();
    case 'gzip':
      return zlib.createGunzip({ chunkSize: gunzipChunkSize });
    case 'zstd': {
      const create = (zlib as unknown as ZstdZlib).createZstdDecompress;
      if (typeof create !== 'function') {
        throw new NotImplementedError('zstd-compressed layers', {
          hint:
            `this Node.js (${process.version}) has no zstd in node:zlib; run minidock on ` +
            'Node.js 22.15 or later, or pull an image variant with gzip layers',
        });
      }
      return create.call(zlib);
    }
  }
}
