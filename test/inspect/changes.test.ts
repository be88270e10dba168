import assert from 'node:assert/strict';
import { rm } from 'node:fs/promises';
import { dirname } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { layerChanges, mergedEntries, viewChanges, type Change } from '../../src/inspect/index.js';
import { craftedTars, dir, file, unpackLayers } from '../helpers/crafted-layers.js';
import { makeTar } from '../helpers/make-tar.js';

const skip = process.getuid?.() !== 0 ? 'needs root (applyLayer mknods whiteouts and sets trusted.* xattrs)' : false;

const brief = (c: Change) =>
  `${c.op} ${c.path}${c.deletedBy ? ` ${c.deletedBy}` : ''}${c.removed ? ` -${c.removed.entries}/${c.removed.bytes}` : ''}${c.entry.linkTo ? ` =${c.entry.linkTo}` : ''}`;

describe('layerChanges', { skip }, () => {
  const made: string[] = [];
  const layers = async (tars: Buffer[]) => {
    const dirs = await unpackLayers(tars);
    made.push(dirname(dirs[0]!));
    return dirs;
  };
  let d: string[];

  before(async () => {
    d = await layers(await craftedTars());
  });

  after(async () => {
    for (const m of made) await rm(m, { recursive: true, force: true });
  });

  test('the bottom layer adds everything, hard-link groups named by their first path', () => {
    assert.deepEqual([...layerChanges([], d[0]!)].map(brief), [
      'A etc', 'A etc/f', 'A hl1', 'A hl2 =hl1', 'A keep', 'A link', 'A old', 'A old/x', 'A old/y', 'A opq', 'A opq/a',
    ]);
  });

  test('a whiteout is one deletion that counts what it hides', () => {
    assert.deepEqual([...layerChanges([d[0]!], d[1]!)].map(brief), ['C etc', 'C etc/f', 'D old whiteout -3/30']);
  });

  test('an opaque directory deletes each name it hides from below', () => {
    const changes = [...layerChanges([d[0]!, d[1]!], d[2]!)];
    assert.deepEqual(changes.map(brief), ['C etc', 'C etc/f', 'C opq', 'D opq/a opaque -1/30', 'A opq/b']);
    assert.equal(changes[2]!.entry.opaque, true);
    assert.equal(changes[3]!.entry.size, 30, 'a deletion carries the entry it removes');
  });

  test('a path filter keeps only that subtree', () => {
    assert.deepEqual([...layerChanges([d[0]!, d[1]!], d[2]!, { under: ['opq'] })].map(brief), ['C opq', 'D opq/a opaque -1/30', 'A opq/b']);
    assert.deepEqual([...layerChanges([d[0]!], d[1]!, { under: ['nothing'] })], []);
  });

  test('a non-directory over a directory is a change that removes the subtree', async () => {
    const [a, b] = await layers([
      await makeTar([dir('p'), dir('p/q'), file('p/q/r', 3)]),
      await makeTar([file('p', 1)]),
    ]);
    assert.deepEqual([...layerChanges([a!], b!)].map(brief), ['C p -2/3']);
  });

  test('the merged view applies whiteouts and opaque directories', () => {
    const seen = [...mergedEntries(d)].map(({ entry, layer }) => `${entry.path}@${layer + 1}`);
    assert.deepEqual(seen, ['etc@3', 'etc/f@3', 'hl1@1', 'hl2@1', 'keep@1', 'link@1', 'opq@3', 'opq/b@3']);
  });

  test('viewChanges compares two merged views as docker diff does', () => {
    // etc and opq keep their mode, owner and time: not changed themselves.
    assert.deepEqual([...viewChanges([d[0]!], d)].map(brief), ['C etc/f', 'D old', 'D opq/a', 'A opq/b']);
    assert.deepEqual([...viewChanges(d, d)], [], 'a view has no changes against itself');
  });

  test('equal metadata but other content is a change', async () => {
    const [a, b] = await layers([await makeTar([file('f', 4, 'a')]), await makeTar([file('f', 4, 'b')])]);
    const [c] = await layers([await makeTar([file('f', 4, 'a')])]);
    assert.deepEqual([...viewChanges([a!], [b!])].map(brief), ['C f']);
    assert.deepEqual([...viewChanges([a!], [c!])], [], 'same bytes in another layer directory are no change');
  });
});
