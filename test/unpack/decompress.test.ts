import assert from 'node:assert/strict';
import { Readable } from 'node:stream';
import { buffer } from 'node:stream/consumers';
import { describe, it } from 'node:test';
import zlib from 'node:zlib';
import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { PassThrough } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { MinidockError, NotImplementedError } from '../../src/errors.js';
import { decompressor } from '../../src/unpack/index.js';
import { ZstdProcess, zstdCommandPaths } from '../../src/unpack/decompress.js';

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
  const hasCommand = zstdCommandPaths.some((p) => existsSync(p));
  const skipHas = (hasZstd || hasCommand) && 'this machine has zstd (node:zlib or the command)';
  const skipLacks = !hasZstd && 'this Node has no zstd in node:zlib';
  const skipNoCommand = (hasZstd && 'node:zlib has zstd, so the command is not used') ||
    (!hasCommand && 'needs the zstd command (Debian package zstd)');

  it('refuses zstd with NotImplementedError when neither node:zlib nor the command has it', { skip: skipHas }, () => {
    assert.throws(
      () => decompressor('zstd'),
      (err: unknown) =>
        err instanceof NotImplementedError &&
        err.message === 'not implemented: zstd-compressed layers' &&
        /apt-get install zstd/.test(err.hint ?? ''),
    );
  });

  it('decompresses zstd when node:zlib has it', { skip: skipLacks }, async () => {
    const z = zlib as unknown as { zstdCompressSync: (b: Buffer) => Buffer };
    const compressed = Readable.from([z.zstdCompressSync(payload)]);
    const out = await buffer(compressed.pipe(decompressor('zstd')));
    assert.ok(out.equals(payload));
  });

  describe('through the zstd command', { skip: skipNoCommand }, () => {
    const compress = (data: Buffer): Buffer =>
      execFileSync(zstdCommandPaths.find((p) => existsSync(p))!, ['-q', '-c', '-3'], { input: data, maxBuffer: 64 << 20 });

    it('decompresses many megabytes in pieces, with backpressure', async () => {
      const big = Buffer.alloc(8 * 1024 * 1024 + 5);
      for (let i = 0; i < big.length; i++) big[i] = (i * 2654435761) >>> 24;
      const z = compress(big);
      const pieces = [z.subarray(0, 10), z.subarray(10, 100_000), z.subarray(100_000)];
      const out = await buffer(Readable.from(pieces).pipe(decompressor('zstd')));
      assert.equal(out.length, big.length);
      assert.ok(out.equals(big));
    });

    it('fails corrupt and truncated zstd data with zstd\'s own reason, on one line', async () => {
      const z = compress(payload);
      const corrupt = Buffer.from(z);
      corrupt[z.length >> 1] ^= 0xff;
      for (const bad of [corrupt, z.subarray(0, z.length - 8), Buffer.from('not zstd at all')]) {
        const d = decompressor('zstd');
        await assert.rejects(pipeline(Readable.from([bad]), d, new PassThrough().resume()), (err: unknown) => {
          assert.ok(err instanceof MinidockError, String(err));
          assert.equal(err.code, 'ERR_DECOMPRESS');
          assert.match(err.message, /^zstd: \S/);
          assert.doesNotMatch(err.message, /\n/);
          return true;
        });
      }
    });

    it('kills zstd when the stream is destroyed early', async () => {
      const d = decompressor('zstd');
      assert.ok(d instanceof ZstdProcess);
      const pid = d.pid!;
      d.write(compress(payload).subarray(0, 20));
      assert.ok(existsSync(`/proc/${pid}`), 'zstd runs');
      d.destroy();
      // Reaped by Node once killed; bounded wait.
      for (let i = 0; i < 200 && existsSync(`/proc/${pid}`); i++) await new Promise((r) => setTimeout(r, 10));
      assert.equal(existsSync(`/proc/${pid}`), false, 'zstd is gone');
    });
  });
});
