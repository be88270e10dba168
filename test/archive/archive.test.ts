/**
 * save and load through the CLI, round trip and with the real peers that
 * read and write the same formats: skopeo (docker-archive:, oci:,
 * oci-archive:) and podman (load, save), each in both directions.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import { lstat, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { gzipSync } from 'node:zlib';
import { after, before, describe, test } from 'node:test';
import { cliPath, makeTestRoot, runCli } from '../helpers/cli.js';
import { fixtureSuite } from '../helpers/fixture-registry.js';
import { fixtureLayouts } from '../helpers/fixtures.js';
import { layoutEntry, readLayoutJSON } from '../helpers/layout.js';
import { makeTar, type TarEntry } from '../helpers/make-tar.js';
import { missingTools } from '../helpers/registry.js';
import { assertBlobsVerify, assertLayersComplete } from '../helpers/store-check.js';

const run = promisify(execFile);
const skip = process.getuid?.() !== 0 ? 'needs root (layers are unpacked with their owners; run needs namespaces)' : missingTools();

/** The config digest (image id) of the fixture layout `name`. */
async function fixtureId(name: string): Promise<string> {
  const dir = join(await fixtureLayouts(), name);
  const manifest = await readLayoutJSON<{ config: { digest: string } }>(dir, (await layoutEntry(dir)).digest);
  return manifest.config.digest;
}

/** podman with its storage in dir: nothing of the machine's own podman store is touched. */
function podmanArgs(dir: string): string[] {
  return [
    '--root', join(dir, 'root'),
    '--runroot', join(dir, 'runroot'),
    '--storage-driver', 'vfs',
    '--cgroup-manager', 'cgroupfs',
    '--events-backend', 'none',
  ];
}

/** Why podman cannot be used here, or false when it can. */
async function podmanUnusable(dir: string): Promise<string | false> {
  try {
    await run('podman', [...podmanArgs(dir), 'images'], { timeout: 60_000 });
    return false;
  } catch (err) {
    return `podman cannot run here: ${(err as Error).message.split('\n')[0]}`;
  }
}

describe('minidock save and load', { skip }, () => {
  const s = fixtureSuite();
  let work: string;
  let other: string;
  let busyboxId: string;
  const cli = (args: string[], root = s.root) => runCli(args, { root });

  before(async () => {
    work = await mkdtemp(join(tmpdir(), 'minidock-archive-'));
    for (const ref of [s.busybox, s.layered]) {
      const r = await cli(['pull', '-q', ref]);
      assert.equal(r.code, 0, r.stderr);
    }
    busyboxId = await fixtureId('busybox');
  });

  after(async () => {
    if (work) await rm(work, { recursive: true, force: true });
  });

  /** A fresh, empty store for the loading side; removed by the caller through `other`. */
  const freshStore = async () => {
    if (other) await rm(other, { recursive: true, force: true });
    other = makeTestRoot();
    return other;
  };
  after(async () => {
    if (other) await rm(other, { recursive: true, force: true });
  });

  /** Asserts that root holds image id tagged `tag`, intact, and that it runs. */
  const assertLoaded = async (root: string, tag: string, id: string) => {
    const images = await cli(['images', '--no-trunc'], root);
    const [repo, t] = [tag.slice(0, tag.lastIndexOf(':')), tag.slice(tag.lastIndexOf(':') + 1)];
    assert.match(images.stdout, new RegExp(`^${repo.replace(/[.]/g, '\\.')}\\s+${t}\\s+${id}\\s`, 'm'), images.stdout);
    await assertBlobsVerify(root);
    await assertLayersComplete(root);
    const r = await cli(['run', '--rm', '--entrypoint', 'echo', tag, 'ran'], root);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout, 'ran\n');
  };

  for (const format of ['docker-archive', 'oci-archive', 'oci-dir'] as const) {
    test(`an image saved as ${format} loads into another store with its id, tag and manifest digest`, async () => {
      const out = join(work, `round.${format}`);
      const saved = await cli(['save', '--format', format, '-o', out, s.busybox, s.layered]);
      assert.equal(saved.code, 0, saved.stderr);
      assert.equal(saved.stdout, '');

      const root = await freshStore();
      const loaded = await cli(['load', '-i', out], root);
      assert.equal(loaded.code, 0, loaded.stderr);
      assert.deepEqual(loaded.stdout.trim().split('\n').sort(), [`Loaded image: ${s.busybox}`, `Loaded image: ${s.layered}`].sort());
      await assertLoaded(root, s.busybox, busyboxId);
      const layered = await cli(['run', '--rm', s.layered, 'cat /etc/motd'], root);
      assert.equal(layered.code, 0, layered.stderr);

      // The blobs went across as they were: the manifest digest is the pulled one.
      const manifests = (await readdir(join(s.root, 'images'))).filter((n) => n.endsWith('.json'));
      for (const name of manifests) {
        const rec = JSON.parse(await readFile(join(s.root, 'images', name), 'utf8')) as { manifestDigest: string };
        const copy = JSON.parse(await readFile(join(root, 'images', name), 'utf8')) as { manifestDigest: string };
        assert.equal(copy.manifestDigest, rec.manifestDigest);
      }
    });
  }

  test('save writes to stdout and load reads stdin, gzip-compressed too', async () => {
    const out = join(work, 'piped.tar');
    await run('sh', ['-c', 'exec "$0" -- "$1" save "$2" > "$3"', process.execPath, cliPath, s.busybox, out], {
      env: { ...process.env, MINIDOCK_ROOT: s.root },
    });
    const gz = join(work, 'piped.tar.gz');
    await writeFile(gz, gzipSync(await readFile(out)));
    const root = await freshStore();
    const loaded = await runCli(['load'], { root, input: await readFile(gz) });
    assert.equal(loaded.code, 0, loaded.stderr);
    assert.equal(loaded.stdout, `Loaded image: ${s.busybox}\n`);
    await assertLoaded(root, s.busybox, busyboxId);
  });

  test('save -o writes into a device in place (never renames a file over it)', async () => {
    const nul = join(work, 'null');
    await run('mknod', ['-m', '666', nul, 'c', '1', '3']);
    const r = await cli(['save', '-o', nul, s.busybox]);
    assert.equal(r.code, 0, r.stderr);
    assert.ok((await lstat(nul)).isCharacterDevice(), 'the device is still a device');
    assert.deepEqual((await readdir(work)).filter((n) => n.startsWith('null')), ['null']);
  });

  test('skopeo reads what minidock saves: docker-archive, oci-archive and an OCI layout', async () => {
    const docker = join(work, 'for-skopeo.tar');
    assert.equal((await cli(['save', '-o', docker, s.busybox])).code, 0);
    const oci = join(work, 'for-skopeo-oci.tar');
    assert.equal((await cli(['save', '--format', 'oci-archive', '-o', oci, s.busybox])).code, 0);
    const dir = join(work, 'for-skopeo-dir');
    assert.equal((await cli(['save', '--format', 'oci-dir', '-o', dir, s.busybox])).code, 0);

    for (const source of [`docker-archive:${docker}`, `oci-archive:${oci}`, `oci:${dir}`]) {
      const { stdout } = await run('skopeo', ['inspect', '--config', '--raw', source]);
      assert.equal(`sha256:${createHash('sha256').update(stdout).digest('hex')}`, busyboxId, source);
      // A full copy reads every blob and checks it against its digest.
      const copy = join(work, `copied-${source.split(':')[0]}`);
      await run('skopeo', ['copy', '-q', source, `oci:${copy}:x`]);
    }
  });

  test('minidock loads what skopeo writes: docker-archive, oci-archive and an OCI layout', async () => {
    const layout = join(await fixtureLayouts(), 'layered');
    const layeredId = await fixtureId('layered');
    const cases: [string, string, string][] = [
      ['docker-archive', join(work, 'skopeo.tar'), `docker-archive:${join(work, 'skopeo.tar')}:example.test/team/layered:v1`],
      ['oci-archive', join(work, 'skopeo-oci.tar'), `oci-archive:${join(work, 'skopeo-oci.tar')}:example.test/team/layered:v1`],
      ['oci', join(work, 'skopeo-dir'), `oci:${join(work, 'skopeo-dir')}:example.test/team/layered:v1`],
    ];
    for (const [kind, path, dest] of cases) {
      await run('skopeo', ['copy', '-q', `oci:${layout}:latest`, dest]);
      const root = await freshStore();
      const loaded = await cli(['load', '-i', path], root);
      assert.equal(loaded.code, 0, `${kind}: ${loaded.stderr}`);
      assert.equal(loaded.stdout, 'Loaded image: example.test/team/layered:v1\n', kind);
      await assertLoaded(root, 'example.test/team/layered:v1', layeredId);
    }
  });

  test('podman loads what minidock saves, and minidock loads what podman saves', async (t) => {
    const pdir = join(work, 'podman');
    const why = await podmanUnusable(pdir);
    if (why) {
      t.skip(why);
      return;
    }
    const podman = (...args: string[]) => run('podman', [...podmanArgs(pdir), ...args], { timeout: 120_000 });
    for (const format of ['docker-archive', 'oci-archive'] as const) {
      const out = join(work, `for-podman.${format}.tar`);
      assert.equal((await cli(['save', '--format', format, '-o', out, s.busybox])).code, 0);
      const { stdout } = await podman('load', '-q', '-i', out);
      assert.match(stdout, new RegExp(`Loaded image: ${s.busybox.replace(/[.]/g, '\\.')}`));
      const inspected = await podman('image', 'inspect', '--format', '{{.Id}}', s.busybox);
      assert.equal(`sha256:${inspected.stdout.trim()}`, busyboxId, format);
      await podman('rmi', s.busybox);
    }

    // podman's own archives, from an image it loaded from skopeo's layout copy.
    await run('skopeo', ['copy', '-q', `oci:${join(await fixtureLayouts(), 'layered')}:latest`, `oci-archive:${join(work, 'seed.tar')}:example.test/podman/layered:v2`]);
    await podman('load', '-q', '-i', join(work, 'seed.tar'));
    for (const format of ['docker-archive', 'oci-archive'] as const) {
      const out = join(work, `from-podman.${format}.tar`);
      await podman('save', '-q', '--format', format, '-o', out, 'example.test/podman/layered:v2');
      const root = await freshStore();
      const loaded = await cli(['load', '-i', out], root);
      assert.equal(loaded.code, 0, `${format}: ${loaded.stderr}`);
      assert.equal(loaded.stdout, 'Loaded image: example.test/podman/layered:v2\n', format);
      await assertLoaded(root, 'example.test/podman/layered:v2', await fixtureId('layered'));
    }
  });

  test('an archive whose layer does not match its config is refused: no image is recorded, nothing unverified stored', async () => {
    // A docker-archive is plain files in a tar: swap layered's top layer
    // for busybox's and the diffID check must catch it.
    const dir = join(work, 'forged');
    assert.equal((await cli(['save', '--format', 'oci-dir', '-o', dir, s.layered])).code, 0);
    const index = JSON.parse(await readFile(join(dir, 'index.json'), 'utf8')) as { manifests: { digest: string }[] };
    const manifestPath = join(dir, 'blobs', 'sha256', index.manifests[0]!.digest.slice(7));
    const manifest = JSON.parse(await readFile(manifestPath, 'utf8')) as { config: { digest: string }; layers: { digest: string }[] };
    const layers = manifest.layers.map((l) => l.digest.slice(7));
    const tar = join(work, 'forged.tar');
    await writeFile(join(dir, 'manifest.json'), JSON.stringify([{
      Config: `blobs/sha256/${manifest.config.digest.slice(7)}`,
      RepoTags: ['example.test/forged:latest'],
      Layers: [`blobs/sha256/${layers[0]}`, `blobs/sha256/${layers[0]}`],
    }]));
    await run('tar', ['-C', dir, '-cf', tar, '.']);

    const root = await freshStore();
    const r = await cli(['load', '-i', tar], root);
    assert.equal(r.code, 125);
    assert.equal(r.stdout, '');
    assert.match(r.stderr, /^minidock: verify diffID of layer sha256:[0-9a-f]{64}: got sha256:[0-9a-f]{64}, expected sha256:[0-9a-f]{64}\n$/);
    assert.equal((await cli(['images', '-q'], root)).stdout, '');
    assert.deepEqual(await readdir(join(root, 'tmp')), [], 'the extraction is gone');
    await assertBlobsVerify(root);
    await assertLayersComplete(root);
  });

  test('an image saved by id or digest is saved untagged and loads as an image id, as Docker does', async () => {
    const out = join(work, 'by-id.tar');
    assert.equal((await cli(['save', '-o', out, busyboxId])).code, 0);
    const manifest = JSON.parse((await run('tar', ['-xOf', out, 'manifest.json'])).stdout) as { RepoTags: string[] }[];
    assert.deepEqual(manifest.map((m) => m.RepoTags), [[]]);
    const root = await freshStore();
    const loaded = await cli(['load', '-i', out], root);
    assert.equal(loaded.code, 0, loaded.stderr);
    assert.equal(loaded.stdout, `Loaded image ID: ${busyboxId}\n`);
    assert.match((await cli(['images'], root)).stdout, /^<none>\s+<none>\s+[0-9a-f]{12}\s/m);
  });

  test('a multi-platform OCI layout loads the host platform\'s image, skipping the others and the attestation', async () => {
    const root = await freshStore();
    const loaded = await cli(['load', '-i', join(await fixtureLayouts(), 'multiarch')], root);
    assert.equal(loaded.code, 0, loaded.stderr);
    const id = /^Loaded image ID: (sha256:[0-9a-f]{64})\n$/.exec(loaded.stdout)?.[1];
    assert.ok(id, loaded.stdout);
    assert.equal((await cli(['images', '-q'], root)).stdout.trim().split('\n').length, 1);
    const r = await cli(['run', '--rm', id, 'sh', '-c', 'echo $FIXTURE'], root);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout, 'amd64\n');
  });

  test('an archive entry naming a path outside the archive is not written anywhere', async () => {
    const layout = join(await fixtureLayouts(), 'busybox');
    const entries: TarEntry[] = [];
    for (const name of ['oci-layout', 'index.json']) entries.push({ name, content: await readFile(join(layout, name)) });
    for (const hex of await readdir(join(layout, 'blobs', 'sha256'))) {
      entries.push({ name: `blobs/sha256/${hex}`, content: await readFile(join(layout, 'blobs', 'sha256', hex)) });
    }
    const marker = `escape-${process.pid}`;
    entries.push(
      { name: `../${marker}`, content: 'out\n' },
      { name: `a/../../${marker}-2`, content: 'out\n' },
      { name: `/tmp/${marker}-abs`, content: 'out\n' },
      // A link out, and an entry through it.
      { name: 'up', type: 'symlink', linkname: '../../..' },
      { name: `up/${marker}-3`, content: 'out\n' },
    );
    const tar = join(work, 'hostile.tar');
    await writeFile(tar, await makeTar(entries));

    const root = await freshStore();
    const r = await cli(['load', '-i', tar], root);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout, `Loaded image ID: ${busyboxId}\n`);
    for (const path of [
      join(root, 'tmp', marker),
      join(root, 'tmp', `${marker}-2`),
      join(root, marker),
      `/tmp/${marker}-abs`,
      join(root, '..', `${marker}-3`),
      join(root, `${marker}-3`),
    ]) {
      assert.equal(existsSync(path), false, `${path} was not written`);
    }
    assert.deepEqual(await readdir(join(root, 'tmp')), []);
  });

  test('load stops before an entry would fill the store\'s disk', async () => {
    // A tar whose one entry says it holds 1 PiB (size in base-256, as GNU tar
    // writes sizes past 8 GiB): refused at its header, before any data.
    const tar = await makeTar([{ name: 'bomb.bin', content: 'x' }]);
    const header = tar.subarray(0, 512);
    header.fill(0, 124, 136);
    header[124] = 0x80;
    header.writeBigUInt64BE(2n ** 50n, 128);
    header.fill(0x20, 148, 156);
    const sum = header.reduce((a, b) => a + b, 0);
    header.write(`${sum.toString(8).padStart(6, '0')}\0 `, 148, 'latin1');
    const bomb = join(work, 'bomb.tar');
    await writeFile(bomb, tar);
    const root = await freshStore();
    const r = await cli(['load', '-i', bomb], root);
    assert.equal(r.code, 125);
    assert.match(r.stderr, /^minidock: load .*bomb\.tar: its entry "bomb\.bin" of 1125899906842624 bytes would fill the store's disk \(room for \d+\)\n$/);
    assert.deepEqual(await readdir(join(root, 'tmp')), []);
  });

  test('load refuses what is not an image archive, in one line', async () => {
    await writeFile(join(work, 'notes.txt'), 'not an image\n');
    const junk = join(work, 'junk.tar');
    await run('tar', ['-C', work, '-cf', junk, 'notes.txt']);
    const r = await cli(['load', '-i', junk], await freshStore());
    assert.equal(r.code, 125);
    assert.match(r.stderr, /^minidock: load .*junk\.tar: neither manifest\.json \(Docker archive\) nor index\.json and oci-layout \(OCI layout\) found\nhint: /);
    for (const [manifest, why] of [
      ['[]', 'the archive holds no image'],
      ['[{"Config": "c.json", "Layers": [{"x": 1}]}]', 'a manifest.json entry lists a layer that is not a file name'],
    ]) {
      const odd = await makeTar([{ name: 'manifest.json', content: manifest! }]);
      const r2 = await runCli(['load'], { root: await freshStore(), input: odd });
      assert.equal(r2.code, 125);
      assert.equal(r2.stderr, `minidock: load stdin: ${why}\n`);
    }
    const missing = await cli(['load', '-i', join(work, 'nope.tar')]);
    assert.equal(missing.code, 125);
    assert.match(missing.stderr, /^minidock: load ".*nope\.tar": no such file or directory\n$/);
    const empty = await runCli(['load'], { root: await freshStore(), input: '' });
    assert.equal(empty.code, 125);
    assert.equal(empty.stderr, 'minidock: load stdin: the archive is empty\n');
    const nowhere = await cli(['save', '-o', join(work, 'no', 'such', 'dir.tar'), s.busybox]);
    assert.equal(nowhere.code, 125);
    assert.equal(nowhere.stderr, `minidock: save to ${JSON.stringify(join(work, 'no', 'such', 'dir.tar'))}: its directory does not exist\n`);
    const unknown = await cli(['save', '-o', join(work, 'x.tar'), 'no-such-image:latest']);
    assert.equal(unknown.code, 125);
    assert.match(unknown.stderr, /^minidock: no such image: no-such-image:latest\n$/);
  });
});
