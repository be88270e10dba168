import assert from 'node:assert/strict';
import { Readable } from 'node:stream';
import { buffer } from 'node:stream/consumers';
import { describe, it } from 'node:test';
import zlib from 'node:zlib';
import { NotImplementedError } from '../../src/errors.js';
import { decompressor } from '../../src/unpack/index.js';

const payload = Buffer.from('a layer tar would be here\n'.repeat(1000));

describe('decompressor', () => {
  it('passes uncompressed data through unchanged', async () => {
    const out = await buffer(Readable.from([payload]).pipe(decompressor('none')));
    assert.ok(out.equals(payload));
  });

  it('gunzips gzip data', async () => {
    const out = await buffer(Readable.from([zlib.gzipSync(payload)]).pipe(decompressor('gzip')));
    assert.ok(out.equals(payload));
  });

  it('gunzips data spanning many output chunks', async () => {
    // 3 MiB of varied bytes: several of the decompressor's output chunks.
    const big = Buffer.alloc(3 * 1024 * 1024 + 17);
    for (let i = 0; i < big.length; i++) {
      big[i] = (i * 2654435761) >>> 24;
    }
    const gz = zlib.gzipSync(big);
    const pieces = [gz.subarray(0, 1000), gz.subarray(1000, 70_000), gz.subarray(70_000)];
    const out = await buffer(Readable.from(pieces).pipe(decompressor('gzip')));
    assert.equal(out.length, big.length);
    assert.ok(out.equals(big));
  });

  it('fails corrupt gzip data', async () => {
    const bad = zlib.gzipSync(payload).subarray(0, 40);
    await assert.rejects(buffer(Readable.from([bad]).pipe(decompressor('gzip'))));
  });

  const zstd = zlib as unknown as Record<string, unknown>;
  const hasZstd = typeof zstd.createZstdDecompress === 'function';
  const skipHas = hasZstd && 'this Node has zstd in node:zlib';
  const skipLacks = !hasZstd && 'this Node has no zstd in node:zlib';

  it('refuses zstd with NotImplementedError when node:zlib has none', { skip: skipHas }, () => {
    assert.throws(
      () => decompressor('zstd'),
      (err: unknown) =>
        err instanceof NotImplementedError &&
        err.message === 'not implemented: zstd-compressed layers' &&
        /Node\.js 22\.15/.test(err.hint ?? ''),
    );
  });

  it('decompresses zstd when node:zlib has it', { skip: skipLacks }, async () => {
    const z = zlib as unknown as { zstdCompressSync: (b: Buffer) => Buffer };
    const compressed = Readable.from([z.zstdCompressSync(payload)]);
    const out = await buffer(compressed.pipe(decompressor('zstd')));
    assert.ok(out.equals(payload));
  });
});
