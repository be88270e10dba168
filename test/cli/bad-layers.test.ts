/**
 * Layers that must not unpack, or must unpack harmlessly, pulled through
 * the CLI from the real registry: a truncated tar and a GNU dump directory
 * (refused, one line, nothing stored) and device nodes (unpacked, but of
 * no use to anyone: not to other users of the host, not to the container).
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { hexOf } from '../../src/digest.js';
import { makeTestRoot, runCli } from '../helpers/cli.js';
import { fixtureLayouts } from '../helpers/fixtures.js';
import { busyboxLayer, writeLayout, type LayoutLayer } from '../helpers/layout.js';
import { makeTar } from '../helpers/make-tar.js';
import { missingTools, startRegistry, type TestRegistry } from '../helpers/registry.js';

const skip = process.getuid?.() !== 0 ? 'needs root (namespaces, overlay, mknod)' : missingTools();

const nobody = 65534;

describe('layers that must not hurt', { skip }, () => {
  let registry: TestRegistry;
  let busybox: LayoutLayer;
  let work: string;
  const roots: string[] = [];

  before(async () => {
    busybox = await busyboxLayer(join(await fixtureLayouts(), 'busybox'));
    registry = await startRegistry();
    work = await mkdtemp(join(tmpdir(), 'minidock-bad-layers-'));
  });

  after(async () => {
    await registry?.stop();
    for (const r of roots) await rm(r, { recursive: true, force: true });
    if (work) await rm(work, { recursive: true, force: true });
  });

  /** Pushes an image of these layers (uncompressed tars) as library/name. */
  async function push(name: string, layers: LayoutLayer[]): Promise<string> {
    const layout = join(work, name);
    await writeLayout(layout, layers, { Env: ['PATH=/bin'], Cmd: ['sh'] });
    await registry.push(layout, `library/${name}`, 'latest');
    return `${registry.host}/library/${name}:latest`;
  }

  function freshRoot(): string {
    const root = makeTestRoot();
    roots.push(root);
    return root;
  }

  /** The store holds no layer, no image, nothing half-done; blobs are whole. */
  async function assertNothingStored(root: string): Promise<void> {
    const layers = existsSync(join(root, 'layers')) ? await readdir(join(root, 'layers')) : [];
    assert.deepEqual(layers.filter((n) => n !== 'l'), [], 'no layer directory');
    const images = existsSync(join(root, 'images')) ? await readdir(join(root, 'images')) : [];
    assert.deepEqual(images, [], 'no image record');
    const tmp = existsSync(join(root, 'tmp')) ? await readdir(join(root, 'tmp')) : [];
    assert.deepEqual(tmp, [], 'nothing left in tmp');
    const blobDir = join(root, 'blobs', 'sha256');
    for (const hex of existsSync(blobDir) ? await readdir(blobDir) : []) {
      const bytes = await readFile(join(blobDir, hex));
      assert.equal(createHash('sha256').update(bytes).digest('hex'), hex, `blob ${hex}`);
    }
    const listed = await runCli(['images', '-q'], { root });
    assert.equal(listed.stdout, '');
  }

  function assertOneLine(stderr: string, pattern: RegExp): void {
    const lines = stderr.trim().split('\n');
    assert.match(lines[0]!, /^minidock: /);
    assert.match(lines[0]!, pattern);
    assert.ok(lines.slice(1).every((l) => l.startsWith('hint: ')), stderr);
    assert.doesNotMatch(stderr, /\n\s+at /, 'no stack trace');
  }

  test('a truncated layer tar fails the pull and stores nothing', async () => {
    const whole = await makeTar([
      { name: 'first', content: 'complete' },
      { name: 'cut', content: 'x'.repeat(4000) },
    ]);
    // Cut inside the second file's data; the blob and diffID are those of
    // the cut bytes, so only the tar itself is wrong.
    const ref = await push('truncated', [whole.subarray(0, 512 + 512 + 512 + 1000)]);
    const root = freshRoot();
    const r = await runCli(['pull', '-q', ref], { root });
    assert.equal(r.code, 125, r.stderr);
    assertOneLine(r.stderr, /read layer tar: unexpected end of data/);
    await assertNothingStored(root);
  });

  test('a GNU dump directory fails the pull with a clear refusal and stores nothing', async () => {
    const tar = await makeTar([
      { name: 'before', content: 'b' },
      { name: 'dumped/', type: 'directory', typeflag: 'D' },
    ]);
    const ref = await push('dumpdir', [tar]);
    const root = freshRoot();
    const r = await runCli(['pull', '-q', ref], { root });
    assert.equal(r.code, 125, r.stderr);
    assertOneLine(r.stderr, /tar entry GNU dump directory .*"dumped\/"/);
    assert.match(r.stderr, /^hint: repack the layer/m);
    await assertNothingStored(root);
  });

  test('device nodes of a layer open neither for host users nor in the container', async () => {
    const devices = await makeTar([
      { name: 'opt/', type: 'directory' },
      // /dev/null's numbers: harmless if this test is wrong, but a real
      // device all the same.
      { name: 'opt/null', type: 'character-device', devmajor: 1, devminor: 3, mode: 0o666 },
    ]);
    const ref = await push('devices', [busybox, devices]);
    const root = freshRoot();
    const pulled = await runCli(['pull', ref], { root });
    assert.equal(pulled.code, 0, pulled.stderr);

    // Unpacked as the image says, in a store other users cannot enter.
    const diffIDs = JSON.parse(
      await readFile(join(root, 'images', `${await imageHex(root, ref)}.json`), 'utf8'),
    ) as { diffIDs: string[] };
    const node = join(root, 'layers', hexOf(diffIDs.diffIDs[1] as never), 'diff', 'opt', 'null');
    const asRoot = spawnSync('sh', ['-c', `echo x > '${node}'`], { encoding: 'utf8' });
    assert.equal(asRoot.status, 0, `the node is a working device: ${asRoot.stderr}`);
    const asNobody = spawnSync('sh', ['-c', `echo x > '${node}'`], {
      encoding: 'utf8',
      uid: nobody,
      gid: nobody,
    });
    assert.notEqual(asNobody.status, 0);
    assert.match(asNobody.stderr, /Permission denied/);

    // The container's root filesystem is mounted nodev.
    const r = await runCli(['run', '--rm', ref, 'sh', '-c', 'echo x > /opt/null; echo status=$?'], { root });
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout, 'status=1\n');
    assert.match(r.stderr, /Permission denied/);
  });
});

async function imageHex(root: string, ref: string): Promise<string> {
  const repos = JSON.parse(await readFile(join(root, 'repositories.json'), 'utf8')) as Record<string, string>;
  return repos[ref]!.slice(7);
}
