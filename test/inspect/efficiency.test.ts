import assert from 'node:assert/strict';
import { rm } from 'node:fs/promises';
import { dirname } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { measureEfficiency } from '../../src/inspect/index.js';
import { craftedTars, dir, file, unpackLayers } from '../helpers/crafted-layers.js';
import { makeTar } from '../helpers/make-tar.js';

const skip = process.getuid?.() !== 0 ? 'needs root (applyLayer mknods whiteouts and sets trusted.* xattrs)' : false;

describe('measureEfficiency', { skip }, () => {
  const made: string[] = [];
  const layers = async (tars: Buffer[]) => {
    const dirs = await unpackLayers(tars);
    made.push(dirname(dirs[0]!));
    return dirs;
  };
  let crafted: string[];

  before(async () => {
    crafted = await layers(await craftedTars());
  });

  after(async () => {
    for (const d of made) await rm(d, { recursive: true, force: true });
  });

  test('agrees with the hand computation on the crafted image', () => {
    // See test/helpers/crafted-layers.ts for the table these come from.
    const e = measureEfficiency(crafted);
    assert.equal(e.score, 1215 / 1515);
    assert.equal(e.potentialWastedBytes, 350);
    assert.equal(e.wastedBytes, 360);
    assert.deepEqual(e.layers, [
      { bytes: 1200, wastedBytes: 160 },
      { bytes: 200, wastedBytes: 200 },
      { bytes: 55, wastedBytes: 0 },
    ]);
    assert.equal(e.totalBytes, 1455);
    assert.equal(e.offenderCount, 1);
    assert.deepEqual(e.offenders, [{ path: 'etc/f', layers: [1, 2, 3], totalBytes: 350, wastedBytes: 300 }]);
  });

  test('a file overwritten three times counts every copy, and only the smallest as needed', async () => {
    const dirs = await layers([
      await makeTar([file('f', 100)]),
      await makeTar([file('f', 200)]),
      await makeTar([file('f', 50)]),
    ]);
    const e = measureEfficiency(dirs);
    // dive: one path, nodes 100, 200, 50: score 50 / 350.
    assert.equal(e.score, 50 / 350);
    assert.equal(e.potentialWastedBytes, 350);
    assert.equal(e.wastedBytes, 300);
    assert.deepEqual(e.layers.map((l) => l.wastedBytes), [100, 200, 0]);
  });

  test('a deleted file weighs 0 in its whiteout; a deleted directory weighs what it held', async () => {
    const dirs = await layers([
      await makeTar([file('f', 70), dir('d'), file('d/a', 10), file('d/b', 20)]),
      await makeTar([{ name: '.wh.f' }, { name: '.wh.d' }]),
    ]);
    const e = measureEfficiency(dirs);
    // f: nodes 70 and 0 (count 2); d/a 10, d/b 20; d: one node of 30.
    assert.equal(e.score, (0 + 10 + 20 + 30) / (70 + 10 + 20 + 30));
    assert.equal(e.potentialWastedBytes, 70);
    assert.equal(e.wastedBytes, 100);
    assert.deepEqual(e.offenders.map((o) => [o.path, o.layers, o.totalBytes]), [['f', [1, 2], 70]]);
  });

  test('an image with no file bytes scores 1', async () => {
    const dirs = await layers([await makeTar([dir('empty')])]);
    assert.equal(measureEfficiency(dirs).score, 1);
  });

  test('keeps only the largest offenders asked for, but counts them all', async () => {
    const dirs = await layers([
      await makeTar([file('a', 1), file('b', 2), file('c', 3)]),
      await makeTar([file('a', 1), file('b', 2), file('c', 3)]),
    ]);
    const e = measureEfficiency(dirs, { top: 2 });
    assert.equal(e.offenderCount, 3);
    assert.deepEqual(e.offenders.map((o) => o.path), ['c', 'b']);
  });
});
