import assert from 'node:assert/strict';
import { rm } from 'node:fs/promises';
import { dirname } from 'node:path';
import { PassThrough } from 'node:stream';
import { after, before, describe, test } from 'node:test';
import { exportTar, listDirectory, resolvePath, splitImagePath } from '../../src/inspect/index.js';
import { craftedTars, unpackLayers } from '../helpers/crafted-layers.js';
import { listLayer } from '../helpers/layout.js';

const skip = process.getuid?.() !== 0 ? 'needs root (applyLayer mknods whiteouts and sets trusted.* xattrs)' : false;

describe('merged files', { skip }, () => {
  let d: string[];

  before(async () => {
    d = await unpackLayers(await craftedTars());
  });

  after(async () => {
    if (d) await rm(dirname(d[0]!), { recursive: true, force: true });
  });

  test('resolvePath finds the topmost copy and follows symlinks inside the image', async () => {
    const f = await resolvePath(d, '/etc/f');
    assert.equal(f?.entry.size, 50);
    assert.equal(f?.file, `${d[2]}/etc/f`);
    const viaLink = await resolvePath(d, '/link');
    assert.deepEqual(viaLink?.parts, ['keep']);
    const link = await resolvePath(d, '/link', { followLast: false });
    assert.equal(link?.entry.kind, 'symlink');
    assert.equal(link?.entry.target, 'keep');
  });

  test('resolvePath sees nothing where a whiteout or an opaque directory deleted', async () => {
    assert.equal(await resolvePath(d, '/old/x'), undefined);
    assert.equal(await resolvePath(d, '/old'), undefined);
    assert.equal(await resolvePath(d, '/opq/a'), undefined);
    assert.equal((await resolvePath(d, '/opq/b'))?.entry.size, 5);
  });

  test('listDirectory lists one level of the merged view', () => {
    assert.deepEqual([...listDirectory(d, [])].map((e) => e.path), ['etc', 'hl1', 'hl2', 'keep', 'link', 'opq']);
    assert.deepEqual([...listDirectory(d, ['opq'])].map((e) => e.path), ['opq/b']);
  });

  test('exportTar writes the merged view, hard links as links to their first name', async () => {
    const sink = new PassThrough();
    const chunks: Buffer[] = [];
    sink.on('data', (c: Buffer) => chunks.push(c));
    const count = await exportTar(d, sink);
    const entries = await listLayer(Buffer.concat(chunks));
    assert.equal(count, entries.length);
    const shown = entries.map((e) => `${e.header.type} ${e.header.name}${e.header.linkname ? ` ${e.header.linkname}` : ''} ${e.data.length}`);
    assert.deepEqual(shown, [
      'directory etc/ 0',
      'file etc/f 50',
      'file hl1 40',
      'link hl2 hl1 0',
      'file keep 1000',
      'symlink link keep 0',
      'directory opq/ 0',
      'file opq/b 5',
    ]);
    assert.equal(entries[1]!.data.toString(), 'c'.repeat(50));
  });

  test('splitImagePath splits at the colon that starts an absolute path', () => {
    assert.deepEqual(splitImagePath('127.0.0.1:5000/a/b:tag:/etc/x'), { image: '127.0.0.1:5000/a/b:tag', path: '/etc/x' });
    assert.deepEqual(splitImagePath('busybox'), { image: 'busybox' });
  });
});
