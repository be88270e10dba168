/**
 * Several minidock processes on one store: pulls at the same time, and a
 * pull killed with SIGKILL mid-download whose partial blob and lock file
 * the next pull takes over. The registry is the real one; where a download
 * must stall on purpose, a stalling proxy (a mock) sits in front of it.
 */
import assert from 'node:assert/strict';
import { readdir, readFile, rm, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { makeTestRoot, runCli } from '../helpers/cli.js';
import { assertBlobsVerify } from '../helpers/store-check.js';
import { fixtureLayouts } from '../helpers/fixtures.js';
import { startProxy } from '../helpers/proxy.js';
import { missingTools, startRegistry, type TestRegistry } from '../helpers/registry.js';

const skip =
  process.getuid?.() !== 0 ? 'needs root (layers are applied with their owners)' : missingTools();

/** The digest and size of the single layer of the layout's image. */
async function onlyLayer(layout: string): Promise<{ digest: string; size: number; diffID: string }> {
  const index = JSON.parse(await readFile(join(layout, 'index.json'), 'utf8'));
  const blob = async (d: string) => JSON.parse(await readFile(join(layout, 'blobs', 'sha256', d.slice(7)), 'utf8'));
  const manifest = await blob(index.manifests[0].digest);
  const config = await blob(manifest.config.digest);
  assert.equal(manifest.layers.length, 1);
  return { ...manifest.layers[0], diffID: config.rootfs.diff_ids[0] };
}

describe('minidock pull from several processes', { skip }, () => {
  let registry: TestRegistry;
  let layouts: string;
  const roots: string[] = [];
  const freshRoot = () => {
    const root = makeTestRoot();
    roots.push(root);
    return root;
  };

  before(async () => {
    layouts = await fixtureLayouts();
    registry = await startRegistry();
    await registry.push(join(layouts, 'busybox'), 'library/busybox', 'latest');
    await registry.push(join(layouts, 'multiarch'), 'library/multiarch', 'latest', { all: true });
  });

  after(async () => {
    await registry?.stop();
    for (const root of roots) await rm(root, { recursive: true, force: true });
  });

  test('two pulls of the same image at once both succeed and store each blob once', async () => {
    const root = freshRoot();
    const image = `${registry.host}/library/busybox:latest`;
    const [a, b] = await Promise.all([runCli(['pull', image], { root }), runCli(['pull', image], { root })]);
    assert.equal(a.code, 0, a.stderr);
    assert.equal(b.code, 0, b.stderr);
    assert.equal(a.stdout, `${image}\n`);
    assert.equal(b.stdout, `${image}\n`);
    // Manifest, config, layer: three blobs, each under its own name once.
    assert.equal(await assertBlobsVerify(root), 3);
    const { diffID } = await onlyLayer(join(layouts, 'busybox'));
    assert.deepEqual((await readdir(join(root, 'layers'))).sort(), [diffID.slice(7), 'l']);
    assert.deepEqual(await readdir(join(root, 'tmp')), []);
    assert.equal((await readdir(join(root, 'images'))).filter((n) => n.endsWith('.json')).length, 1);
  });

  test('pulls of two images sharing a layer at once both succeed and share it', async () => {
    const root = freshRoot();
    const one = `${registry.host}/library/busybox:latest`;
    const two = `${registry.host}/library/multiarch:latest`;
    const [a, b] = await Promise.all([runCli(['pull', one], { root }), runCli(['pull', two], { root })]);
    assert.equal(a.code, 0, a.stderr);
    assert.equal(b.code, 0, b.stderr);
    const { diffID } = await onlyLayer(join(layouts, 'busybox'));
    assert.deepEqual((await readdir(join(root, 'layers'))).sort(), [diffID.slice(7), 'l']);
    // Two configs, two manifests, the index and the one shared layer.
    assert.equal(await assertBlobsVerify(root), 6);
    assert.deepEqual(await readdir(join(root, 'tmp')), []);
    // Both tags landed: neither pull's metadata write lost the other's.
    const repositories = JSON.parse(await readFile(join(root, 'repositories.json'), 'utf8'));
    assert.deepEqual(Object.keys(repositories).sort(), [
      `${registry.host}/library/busybox:latest`,
      `${registry.host}/library/multiarch:latest`,
    ]);
  });

  test('a pull killed mid-layer leaves a partial download and its lock file; the next pull resumes it', async () => {
    const root = freshRoot();
    const layer = await onlyLayer(join(layouts, 'busybox'));
    const half = layer.size >> 1;
    const proxy = await startProxy(registry.url, { stall: { blob: layer.digest, after: half } });
    try {
      const image = `${proxy.host}/library/busybox:latest`;
      const killer = new AbortController();
      const first = runCli(['pull', image], { root, signal: killer.signal });

      // Wait until the first half is on disk, then kill -9.
      await proxy.stalled;
      const partial = join(root, 'tmp', `partial-sha256-${layer.digest.slice(7)}`);
      for (let i = 0; i < 500; i++) {
        const size = await stat(partial).then((s) => s.size, () => 0);
        if (size === half) break;
        await new Promise((r) => setTimeout(r, 20));
      }
      assert.equal((await stat(partial)).size, half, 'the first half reached the partial file');
      killer.abort();
      const killed = await first;
      assert.equal(killed.signal, 'SIGKILL');
      const lock = join(root, 'locks', `layer-${layer.diffID.slice(7)}`);
      assert.ok((await stat(lock)).isFile(), 'the killed pull left its lock file behind');

      // The kernel released the dead pull's flock: the next pull takes the
      // lock at once and asks only for the second half.
      const second = await runCli(['pull', image], { root });
      assert.equal(second.code, 0, second.stderr);
      assert.deepEqual(proxy.ranges, [undefined, `bytes=${half}-`]);
      assert.equal(await assertBlobsVerify(root), 3);
      assert.deepEqual(await readdir(join(root, 'tmp')), [], 'the partial file became the blob; dead pulls swept');
      const run = await runCli(['images', '-q'], { root });
      assert.equal(run.stdout.trim().split('\n').length, 1);
    } finally {
      await proxy.close();
    }
  });
});
