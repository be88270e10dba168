/**
 * checkStore on layer directories in the shapes a crash, a full disk or a
 * hand could leave them, built directly on disk (the CLI tests cover the
 * shapes a pull makes).
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { mkdir, readdir, readlink, unlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import type { DiffID } from '../../src/digest.js';
import { checkStore, ensureLayerLink, layerTreeDigest } from '../../src/store/index.js';
import { tempStoreSuite } from '../helpers/temp-store.js';

const hexOfText = (s: string) => createHash('sha256').update(s).digest('hex');

describe('checkStore', () => {
  const t = tempStoreSuite('check');

  /** Writes a complete layer directory the way commitLayer leaves one. */
  const goodLayer = async (seed: string): Promise<DiffID> => {
    const hex = hexOfText(seed);
    const diffID = `sha256:${hex}` as DiffID;
    const diff = join(t.root, 'layers', hex, 'diff');
    await mkdir(join(diff, 'etc'), { recursive: true });
    await writeFile(join(diff, 'etc', 'motd'), `${seed}\n`);
    const link = await ensureLayerLink(t.store, diffID);
    const tree = await layerTreeDigest(diff);
    await writeFile(join(t.root, 'layers', hex, 'layer.json'), JSON.stringify({ diffID, size: 1, entries: 2, unpacked: '', link, tree }));
    return diffID;
  };

  test('reports every kind of damage, changes nothing without --repair, and repairs it with', async () => {
    const sound = await goodLayer('sound');
    const unlinked = await goodLayer('unlinked');
    const grown = await goodLayer('grown');
    const unfinished = hexOfText('unfinished');
    const misnamed = hexOfText('misnamed');

    await unlink(join(t.root, 'layers', 'l', hexOfText('unlinked').slice(0, 12)));
    await writeFile(join(t.root, 'layers', hexOfText('grown'), 'diff', 'etc', 'extra'), 'not in the layer\n');
    await mkdir(join(t.root, 'layers', unfinished, 'diff'), { recursive: true });
    await mkdir(join(t.root, 'layers', misnamed, 'diff'), { recursive: true });
    await writeFile(join(t.root, 'layers', misnamed, 'layer.json'), JSON.stringify({ diffID: sound }));
    await mkdir(join(t.root, 'layers', 'junk'));
    const badBlob = hexOfText('what the name promises');
    await writeFile(join(t.root, 'blobs', 'sha256', badBlob), 'something else');

    const expected = ([
      ['blob', `sha256:${badBlob}`, /^content hashes to sha256:[0-9a-f]{64}$/],
      ['layer', grown, /^its files differ from what was unpacked/],
      ['layer', 'junk', /^not a layer directory name$/],
      ['layer', `sha256:${misnamed}`, new RegExp(`^layer.json names ${sound}$`)],
      ['layer', `sha256:${unfinished}`, /^no layer.json \(never completed\)$/],
      ['link', unlinked, /^link l\/[0-9a-f]{12} is missing or wrong$/],
    ] as [string, string, RegExp][]).sort((a, b) => `${a[0]} ${a[1]}`.localeCompare(`${b[0]} ${b[1]}`));
    const sorted = (ps: Awaited<ReturnType<typeof checkStore>>) =>
      [...ps].sort((a, b) => `${a.kind} ${a.subject}`.localeCompare(`${b.kind} ${b.subject}`));

    const found = sorted(await checkStore(t.store));
    assert.equal(found.length, expected.length, JSON.stringify(found, null, 1));
    found.forEach((p, i) => {
      assert.equal(p.kind, expected[i]![0]);
      assert.equal(p.subject, expected[i]![1]);
      assert.match(p.message, expected[i]![2]);
      assert.equal(p.repaired, false);
    });
    // Nothing was touched.
    assert.equal(found.length, sorted(await checkStore(t.store)).length);

    const repaired = await checkStore(t.store, { repair: true });
    assert.ok(repaired.every((p) => p.repaired));
    assert.deepEqual(await checkStore(t.store), []);
    assert.deepEqual((await readdir(join(t.root, 'layers'))).sort(), [hexOfText('sound'), hexOfText('unlinked'), 'l'].sort());
    assert.equal(await readlink(join(t.root, 'layers', 'l', hexOfText('unlinked').slice(0, 12))), `../${hexOfText('unlinked')}/diff`);
    assert.deepEqual(await readdir(join(t.root, 'blobs', 'sha256')), []);
  });
});
