import assert from 'node:assert/strict';
import { Readable } from 'node:stream';
import { buffer } from 'node:stream/consumers';
import { describe, test } from 'node:test';
import { TarTailStream } from '../../src/unpack/index.js';
import { makeTar } from '../helpers/make-tar.js';

async function throughTail(input: Buffer): Promise<{ out: Buffer; repaired: string[] }> {
  const tail = new TarTailStream();
  const repaired: string[] = [];
  tail.onRepair = (what) => repaired.push(what);
  const out = await buffer(Readable.from([input.subarray(0, 700), input.subarray(700)]).pipe(tail));
  return { out, repaired };
}

describe('TarTailStream', () => {
  const entries = [
    { name: 'a.txt', content: 'x'.repeat(1000) },
    { name: 'b.txt', content: 'hello' },
  ];

  test('passes a complete tar through unchanged', async () => {
    const tar = await makeTar(entries);
    const { out, repaired } = await throughTail(tar);
    assert.deepEqual(out, tar);
    assert.deepEqual(repaired, []);
  });

  test('supplies padding and end blocks to a tar that stops after its last entry\'s data', async () => {
    const tar = await makeTar(entries);
    // b.txt's header is the third block from a.txt's start: 512 + 1024 bytes.
    const cut = tar.subarray(0, 512 + 1024 + 512 + 5);
    const { out, repaired } = await throughTail(cut);
    assert.deepEqual(repaired, ["the last entry's padding and the end-of-archive blocks"]);
    assert.equal(out.length % 512, 0);
    assert.deepEqual(out.subarray(0, cut.length), cut);
    assert.ok(out.subarray(cut.length).every((b) => b === 0));
    assert.equal(out.length, 512 + 1024 + 512 + 512 + 1024);
  });

  test('supplies end blocks to a tar that stops at an entry boundary', async () => {
    const tar = await makeTar(entries);
    const cut = tar.subarray(0, 512 + 1024);
    const { out, repaired } = await throughTail(cut);
    assert.deepEqual(repaired, ['the end-of-archive blocks']);
    assert.equal(out.length, cut.length + 1024);
  });

  test('leaves a tar cut inside file data alone, so the parser still refuses it', async () => {
    const tar = await makeTar(entries);
    for (const length of [512 + 300, 512 + 1024 + 100]) {
      const cut = tar.subarray(0, length);
      const { out, repaired } = await throughTail(cut);
      assert.deepEqual(out, cut, `cut at ${length}`);
      assert.deepEqual(repaired, []);
    }
  });
});
