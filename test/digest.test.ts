import assert from 'node:assert/strict';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { Writable } from 'node:stream';
import { describe, test } from 'node:test';
import { DigestingStream, digestOf, hexOf, parseDigest } from '../src/digest.js';
import { DigestMismatchError } from '../src/errors.js';

const sink = () => new Writable({ write: (_c, _e, done) => done() });

describe('parseDigest', () => {
  test('accepts sha256 and sha512 with the right hex length', () => {
    assert.equal(parseDigest(`sha256:${'0'.repeat(64)}`), `sha256:${'0'.repeat(64)}`);
    assert.equal(hexOf(parseDigest(`sha512:${'f'.repeat(128)}`)), 'f'.repeat(128));
  });
  for (const bad of ['', 'sha256', `sha256:${'0'.repeat(63)}`, `sha256:${'0'.repeat(65)}`, `sha256:${'G'.repeat(64)}`, `SHA256:${'0'.repeat(64)}`, `md5:${'0'.repeat(32)}`, `sha512:${'0'.repeat(64)}`]) {
    test(`refuses ${JSON.stringify(bad)}`, () => assert.throws(() => parseDigest(bad), /parse digest/));
  }
});

describe('DigestingStream', () => {
  test('hashes and counts what passes, and verifies against a descriptor', async () => {
    const data = Buffer.from('hello, layer');
    const d = new DigestingStream();
    await pipeline(Readable.from([data.subarray(0, 5), data.subarray(5)]), d, sink());
    assert.equal(d.digest, digestOf(data));
    assert.equal(d.size, data.length);
    d.verify('blob', digestOf(data), data.length);
    assert.throws(() => d.verify('blob', digestOf('other'), data.length), DigestMismatchError);
    assert.throws(() => d.verify('blob', digestOf(data), data.length + 1), /size of blob/);
  });

  test('fails as soon as more bytes pass than the limit allows', async () => {
    const d = new DigestingStream({ limit: { bytes: 4, what: 'layer x' } });
    await assert.rejects(pipeline(Readable.from([Buffer.from('abc'), Buffer.from('de')]), d, sink()), /size of layer x/);
  });
});
