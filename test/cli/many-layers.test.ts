/**
 * An image of 100 layers, past what overlay's one-page mount options hold
 * with full layer paths: pulled and run through the CLI, it must mount from
 * the short links under layers/l and show exactly the files its layers
 * leave.
 */
import assert from 'node:assert/strict';
import { mkdir, mkdtemp, readdir, readFile, readlink, rm, symlink, unlink } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { hexOf, type Digest } from '../../src/digest.js';
import { makeTestRoot, runCli } from '../helpers/cli.js';
import { fixtureLayouts } from '../helpers/fixtures.js';
import { busyboxLayer, writeLayout, type LayoutLayer } from '../helpers/layout.js';
import { makeTar } from '../helpers/make-tar.js';
import { missingTools, startRegistry, type TestRegistry } from '../helpers/registry.js';

const skip = process.getuid?.() !== 0 ? 'needs root (namespaces, overlay, cgroups)' : missingTools();

const layerCount = 100;

interface BuiltImage {
  dir: string;
  diffIDs: Digest[];
  /** What `ls /layers` must print, in its order. */
  expected: string[];
}

/**
 * Writes an OCI layout: the busybox fixture's layer at the bottom (for ls),
 * then layers 1..99, layer i adding /layers/<i>; every tenth layer from 15
 * on also deletes /layers/<i-10> with a whiteout.
 */
async function buildManyLayers(dir: string, busyboxLayout: string): Promise<BuiltImage> {
  const layers: LayoutLayer[] = [await busyboxLayer(busyboxLayout)];
  const present = new Set<number>();
  for (let i = 1; i < layerCount; i++) {
    const entries: Parameters<typeof makeTar>[0] = [{ name: 'layers/', type: 'directory', mode: 0o755 }];
    if (i >= 15 && i % 10 === 5) {
      entries.push({ name: `layers/.wh.${i - 10}` });
      present.delete(i - 10);
    }
    entries.push({ name: `layers/${i}`, content: `layer ${i}\n` });
    present.add(i);
    layers.push(await makeTar(entries));
  }

  const diffIDs = await writeLayout(dir, layers, { Env: ['PATH=/bin'], Cmd: ['ls', '/layers'] });
  // ls sorts by name, as strings.
  const expected = [...present].map(String).sort();
  return { dir, diffIDs, expected };
}

describe('an image of 100 layers', { skip }, () => {
  let registry: TestRegistry;
  let root: string;
  let work: string;
  let image: BuiltImage;
  let ref: string;

  before(async () => {
    const layouts = await fixtureLayouts();
    work = await mkdtemp(join(tmpdir(), 'minidock-many-'));
    image = await buildManyLayers(join(work, 'layout'), join(layouts, 'busybox'));
    registry = await startRegistry();
    await registry.push(image.dir, 'library/many', 'latest');
    root = makeTestRoot();
    ref = `${registry.host}/library/many:latest`;
  });

  after(async () => {
    await registry?.stop();
    if (root) await rm(root, { recursive: true, force: true });
    if (work) await rm(work, { recursive: true, force: true });
  });

  test('pulls and runs from short links, a taken name making a longer one', async () => {
    assert.equal(image.diffIDs.length, layerCount);
    // A link left by another layer under layer 7's 12-digit name.
    const hex7 = hexOf(image.diffIDs[7]!);
    const other = 'f'.repeat(64) === hex7 ? '0'.repeat(64) : 'f'.repeat(64);
    await mkdir(join(root, 'layers', 'l'), { recursive: true });
    await symlink(`../${other}/diff`, join(root, 'layers', 'l', hex7.slice(0, 12)));

    const pulled = await runCli(['pull', ref], { root });
    assert.equal(pulled.code, 0, pulled.stderr);

    for (const [i, d] of image.diffIDs.entries()) {
      const hex = hexOf(d);
      const rec = JSON.parse(await readFile(join(root, 'layers', hex, 'layer.json'), 'utf8')) as { link?: string };
      assert.equal(rec.link, i === 7 ? hex.slice(0, 16) : hex.slice(0, 12), `layer ${i}'s link name`);
      assert.equal(await readlink(join(root, 'layers', 'l', rec.link!)), `../${hex}/diff`, `layer ${i}'s link target`);
    }
    assert.equal(await readlink(join(root, 'layers', 'l', hex7.slice(0, 12))), `../${other}/diff`, 'the other link is untouched');

    const r = await runCli(['run', '--rm', ref], { root });
    assert.equal(r.code, 0, r.stderr);
    assert.deepEqual(r.stdout.trim().split('\n'), image.expected);
    assert.equal(image.expected.length, layerCount - 1 - 9, 'nine files were deleted');
  });

  test('a layer stored without a link gets one when a container runs', async () => {
    const hex = hexOf(image.diffIDs[42]!);
    await unlink(join(root, 'layers', 'l', hex.slice(0, 12)));
    const r = await runCli(['run', '--rm', ref, 'cat', '/layers/42'], { root });
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout, 'layer 42\n');
    assert.equal(await readlink(join(root, 'layers', 'l', hex.slice(0, 12))), `../${hex}/diff`);
  });

  test('rmi removes the links with the layers', async () => {
    const r = await runCli(['rmi', ref], { root });
    assert.equal(r.code, 0, r.stderr);
    const left = (await readdir(join(root, 'layers'))).filter((n) => n !== 'l');
    assert.deepEqual(left, []);
    // Only the link planted by the first test remains.
    assert.deepEqual(await readdir(join(root, 'layers', 'l')), [hexOf(image.diffIDs[7]!).slice(0, 12)]);
  });
});
