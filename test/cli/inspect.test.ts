/**
 * The inspect commands end to end: the built CLI pulls the fixture images
 * and a crafted one (whiteouts, an opaque directory, a hard-link group, a
 * file written three times) from a real registry, the registry is stopped,
 * and every command then runs on the store alone. The terminal views of the
 * crafted image are compared with golden files in
 * test/fixtures/inspect-golden/ (MINIDOCK_UPDATE_GOLDEN=1 rewrites them).
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import { execFile, execFileSync } from 'node:child_process';
import { lstat, mkdtemp, readdir, readFile, readlink, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { promisify } from 'node:util';
import { LayoutWriter } from '../../fixtures/build-images.js';
import { MediaType, type ImageConfig, type ImageManifest } from '../../src/image/index.js';
import { makeTestRoot, repoRoot, runCli } from '../helpers/cli.js';
import { craftedTars } from '../helpers/crafted-layers.js';
import { fixtureLayouts } from '../helpers/fixtures.js';
import { layoutEntry, listLayer, readLayoutBlob, readLayoutJSON } from '../helpers/layout.js';
import { missingTools, startRegistry, type TestRegistry } from '../helpers/registry.js';

const skip = process.getuid?.() !== 0 ? 'needs root (unpacking whiteouts, running a container)' : missingTools();
const goldenDir = join(repoRoot, 'test', 'fixtures', 'inspect-golden');

const umoci = '/usr/bin/umoci';

/** Orders paths as a depth-first walk with sorted names does. */
const byComponents = (a: string, b: string) => {
  const x = a.split('/').join('\0');
  const y = b.split('/').join('\0');
  return x < y ? -1 : x > y ? 1 : 0;
};

const sha256 = (b: Buffer | string) => `sha256:${createHash('sha256').update(b).digest('hex')}`;

/** Writes the crafted image as an OCI layout (uncompressed layers: its digests are the same everywhere). */
async function writeCraftedLayout(dir: string): Promise<void> {
  const tars = await craftedTars();
  const config: ImageConfig = {
    created: '2024-01-01T00:00:00Z',
    architecture: 'amd64',
    os: 'linux',
    config: {
      Env: ['PATH=/bin'],
      Entrypoint: ['/bin/sh', '-c'],
      Cmd: ['cat /etc/f'],
      WorkingDir: '/etc',
      User: '0:0',
      Labels: { 'org.example.purpose': 'inspect tests' },
    },
    rootfs: { type: 'layers', diff_ids: tars.map((t) => sha256(t)) as ImageConfig['rootfs']['diff_ids'] },
    history: [
      { created: '2024-01-01T00:00:00Z', created_by: 'ADD files: etc/f keep old opq hl1 hl2 link (the first copy of etc/f, 100 bytes)' },
      { created: '2024-01-01T00:00:00Z', created_by: 'RUN rewrite etc/f && rm -r old' },
      { created: '2024-01-01T00:00:00Z', created_by: 'ENV PATH=/bin', empty_layer: true },
      { created: '2024-01-01T00:00:00Z', created_by: 'RUN rewrite etc/f && replace opq', comment: 'third copy' },
    ],
  };
  const w = new LayoutWriter(dir);
  await w.init();
  await w.tag(await w.image(config, tars.map((bytes) => ({ mediaType: MediaType.ociLayer, bytes }))));
}

describe('minidock inspect, history, layers, diff, ls, cat, export', { skip }, () => {
  let registry: TestRegistry | undefined;
  let root: string;
  let host: string;
  let crafted: string;
  let layered: string;
  let busybox: string;
  let scratch: string;
  const cli = (args: string[]) => runCli(args, { root });
  /** Output with the registry's address (a free port) made constant. */
  const stable = (s: string) => s.split(host).join('REGISTRY');

  async function golden(name: string, args: string[]): Promise<void> {
    const r = await cli(args);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stderr, '');
    const file = join(goldenDir, `${name}.txt`);
    const actual = stable(r.stdout);
    if (process.env.MINIDOCK_UPDATE_GOLDEN === '1') await writeFile(file, actual);
    assert.equal(actual, await readFile(file, 'utf8'), `${args.join(' ')} matches ${file}`);
  }

  before(async () => {
    const layouts = await fixtureLayouts();
    scratch = await mkdtemp(join(tmpdir(), 'minidock-inspect-cli-'));
    await writeCraftedLayout(join(scratch, 'crafted'));
    registry = await startRegistry();
    host = registry.host;
    await registry.push(join(layouts, 'busybox'), 'library/busybox', 'latest');
    await registry.push(join(layouts, 'layered'), 'library/layered', 'latest');
    await registry.push(join(layouts, 'multiarch'), 'library/multiarch', 'latest', { all: true });
    await registry.push(join(scratch, 'crafted'), 'library/crafted', 'latest');
    root = makeTestRoot();
    crafted = `${host}/library/crafted:latest`;
    layered = `${host}/library/layered:latest`;
    busybox = `${host}/library/busybox:latest`;
  });

  after(async () => {
    await registry?.stop();
    if (root) await rm(root, { recursive: true, force: true });
    if (scratch) await rm(scratch, { recursive: true, force: true });
  });

  test('--remote reads the registry and stores nothing', async () => {
    const emptyRoot = makeTestRoot();
    try {
      const r = await runCli(['inspect', '--remote', '--format', 'json', `${host}/library/multiarch:latest`], { root: emptyRoot });
      assert.equal(r.code, 0, r.stderr);
      const j = JSON.parse(r.stdout);
      assert.equal(j.kind, 'remote');
      assert.deepEqual(j.platforms.map((p: { platform: string }) => p.platform), ['linux/arm64/v8', 'linux/amd64', 'unknown/unknown']);
      assert.equal(sha256(j.index), j.digest, 'the index is shown exactly as served');
      assert.equal(sha256(j.manifest), j.manifestDigest);
      assert.equal(j.platform.architecture, 'amd64');

      const l = await runCli(['layers', '--remote', crafted, '3'], { root: emptyRoot });
      assert.equal(l.code, 0, l.stderr);
      assert.deepEqual(l.stdout.split('\n').slice(1, -1).map((s) => s.replace(/\s+/g, ' ')), [
        'A drwxr-xr-x 0/0 /etc',
        'A -rw-r--r-- 0/0 50 /etc/f',
        'A drwxr-xr-x 0/0 /opq',
        'D (opaque dir) /opq/* (what lower layers hold below)',
        'A -rw-r--r-- 0/0 5 /opq/b',
      ]);
      const lj = await runCli(['layers', '--remote', '--format', 'json', crafted, '2'], { root: emptyRoot });
      assert.equal(lj.code, 0, lj.stderr);
      const changes = JSON.parse(lj.stdout).layers[0].changes;
      assert.deepEqual(changes.map((c: { op: string; path: string }) => `${c.op} ${c.path}`), ['A /etc', 'A /etc/f', 'D /old']);

      const stored = (await readdir(emptyRoot)).filter((n) => n !== 'VERSION');
      for (const d of stored) assert.deepEqual(await readdir(join(emptyRoot, d), { recursive: true }), [], `${d}/ stays empty`);
    } finally {
      await rm(emptyRoot, { recursive: true, force: true });
    }
  });

  test('pulls the images, then the registry goes away', async () => {
    for (const ref of [busybox, layered, crafted]) {
      const r = await cli(['pull', '-q', ref]);
      assert.equal(r.code, 0, r.stderr);
    }
    await registry!.stop();
    registry = undefined;
    const r = await cli(['pull', '-q', crafted]);
    assert.equal(r.code, 125, 'nothing answers at the registry address any more');
  });

  test('inspect shows the manifest exactly as stored, and the config', async () => {
    const r = await cli(['inspect', '--format', 'json', crafted]);
    assert.equal(r.code, 0, r.stderr);
    const j = JSON.parse(r.stdout);
    assert.equal(j.schemaVersion, 1);
    assert.equal(j.kind, 'image');
    assert.equal(sha256(j.manifest), j.digest);
    assert.deepEqual(j.platform, { os: 'linux', architecture: 'amd64' });
    assert.deepEqual(j.entrypoint, ['/bin/sh', '-c']);
    assert.deepEqual(j.labels, { 'org.example.purpose': 'inspect tests' });
    assert.equal(j.workingDir, '/etc');
    assert.deepEqual(j.layers.map((l: { mediaType: string }) => l.mediaType), [MediaType.ociLayer, MediaType.ociLayer, MediaType.ociLayer]);
    assert.deepEqual(j.layers.map((l: { unpackedSize: number }) => l.unpackedSize), [1200, 200, 55]);
    assert.deepEqual(j.layers.map((l: { diffID: string }) => l.diffID), j.config.rootfs.diff_ids);

    const raw = await cli(['inspect', '--raw', 'manifest', crafted]);
    assert.equal(sha256(Buffer.from(raw.stdout, 'utf8')), j.digest);
    await golden('inspect', ['inspect', '--efficiency', crafted]);
  });

  test('inspect --efficiency agrees with the hand computation, and --fail-under gates on it', async () => {
    const r = await cli(['inspect', '--efficiency', '--format', 'json', crafted]);
    const e = JSON.parse(r.stdout).efficiency;
    assert.equal(e.score, 1215 / 1515);
    assert.equal(e.wastedBytes, 360);
    assert.equal(e.potentialWastedBytes, 350);
    assert.deepEqual(e.offenders, [{ path: 'etc/f', layers: [1, 2, 3], totalBytes: 350, wastedBytes: 300 }]);

    const fail = await cli(['inspect', '--efficiency', '--fail-under', '0.9', crafted]);
    assert.equal(fail.code, 1);
    assert.equal(fail.stderr, 'minidock: efficiency 0.8020 is below the threshold 0.9\n');
    assert.match(fail.stdout, /Score: +80\.20 %/);
    const pass = await cli(['inspect', '--fail-under', '0.8', crafted]);
    assert.equal(pass.code, 0, pass.stderr);
    const bad = await cli(['inspect', '--fail-under', 'high', crafted]);
    assert.equal(bad.code, 125);
    assert.match(bad.stderr, /^minidock: --fail-under "high": want a number from 0 to 1\nhint: /);
  });

  test('history lists entries newest first, empty layers marked', async () => {
    await golden('history', ['history', '--no-human', crafted]);
    const trunc = await cli(['history', crafted]);
    assert.match(trunc.stdout, /ADD files: etc\/f keep old opq hl1 hl2 link \(…/);
    const j = JSON.parse((await cli(['history', '--format', 'json', crafted])).stdout);
    assert.deepEqual(j.history.map((h: { layer: number | null }) => h.layer), [1, 2, null, 3]);
    assert.equal(j.history[0].createdBy, 'ADD files: etc/f keep old opq hl1 hl2 link (the first copy of etc/f, 100 bytes)');
  });

  test('layers lists additions, changes and deletions per layer', async () => {
    await golden('layers', ['layers', crafted]);
    await golden('layers-tree', ['layers', '--tree', crafted, '3']);
    const f = await cli(['layers', '--filter', '/opq', crafted, '3']);
    assert.deepEqual(f.stdout.split('\n').filter((l) => /^[ACD] /.test(l)).map((l) => l.replace(/\s+/g, ' ')), [
      'C drwxr-xr-x 0/0 /opq (opaque: hides what lower layers hold below)',
      'D (opaque dir) /opq/a (removes 1 entries, 30 bytes)',
      'A -rw-r--r-- 0/0 5 /opq/b',
    ]);
    const j = JSON.parse((await cli(['layers', '--format', 'json', layered])).stdout);
    const second = j.layers[1].changes.map((c: { op: string; path: string; deletedBy?: string; hardLinkTo?: string }) =>
      `${c.op} ${c.path}${c.deletedBy ? ` ${c.deletedBy}` : ''}${c.hardLinkTo ? ` = ${c.hardLinkTo}` : ''}`);
    assert.deepEqual(second, ['C /data', 'A /data/hard1', 'A /data/hard2 = /data/hard1', 'A /data/new', 'A /data/new/g', 'D /data/old whiteout', 'C /etc', 'A /etc/motd']);
    const bad = await cli(['layers', crafted, '9']);
    assert.equal(bad.code, 125);
    assert.match(bad.stderr, /^minidock: layer 9: the image has layers 1 to 3\n/);
  });

  test('diff compares two images as docker diff does', async () => {
    await golden('diff', ['diff', busybox, layered]);
    const j = JSON.parse((await cli(['diff', '--format', 'json', layered, busybox])).stdout);
    assert.ok(j.changes.some((c: { op: string; path: string }) => c.op === 'D' && c.path === '/data'));
    const one = await cli(['diff', crafted]);
    assert.equal(one.code, 125);
    assert.match(one.stderr, /an image has no changes of its own/);
  });

  test('ls and cat read the merged filesystem', async () => {
    await golden('ls', ['ls', `${crafted}:/`]);
    const cat = await cli(['cat', `${crafted}:/etc/f`]);
    assert.equal(cat.stdout, 'c'.repeat(50));
    assert.equal((await cli(['cat', `${crafted}:/link`])).stdout, 'k'.repeat(1000));
    const gone = await cli(['cat', `${crafted}:/old/x`]);
    assert.equal(gone.code, 125);
    assert.equal(gone.stderr, `minidock: cat ${crafted}:/old/x: no such file\n`);
    const j = JSON.parse((await cli(['ls', '--format', 'json', `${crafted}:/opq`])).stdout);
    assert.deepEqual(j.entries.map((e: { path: string; size: number }) => [e.path, e.size]), [['/opq/b', 5]]);
  });

  test('export writes the merged filesystem as one tar', async () => {
    const file = join(scratch, 'rootfs.tar');
    const r = await cli(['export', crafted, '-o', file]);
    assert.equal(r.code, 0, r.stderr);
    const entries = await listLayer(await readFile(file));
    assert.deepEqual(entries.map((e) => e.header.name), ['etc/', 'etc/f', 'hl1', 'hl2', 'keep', 'link', 'opq/', 'opq/b']);
  });

  test('export -o writes into a device in place, and a bad output is one line', async () => {
    // A null device of the test's own: the output must be written into it,
    // never replaced by a file renamed over it.
    const nul = join(scratch, 'null');
    execFileSync('mknod', ['-m', '666', nul, 'c', '1', '3']);
    const r = await cli(['export', crafted, '-o', nul]);
    assert.equal(r.code, 0, r.stderr);
    assert.ok((await lstat(nul)).isCharacterDevice(), 'the device is still a device');
    assert.deepEqual((await readdir(scratch)).filter((n) => n.startsWith('null')), ['null']);

    for (const [out, why] of [[join(scratch, 'no', 'such.tar'), 'its directory does not exist'], [scratch, 'it is a directory']]) {
      const bad = await cli(['export', crafted, '-o', out!]);
      assert.equal(bad.code, 125);
      assert.equal(bad.stderr, `minidock: export ${crafted} to ${JSON.stringify(out)}: ${why}\n`);
    }
  });

  test('a container: its changes, its record and spec, its filesystem', async () => {
    const run = await cli(['run', '--name', 'inspected', '-u', '0', '-m', '64m', busybox, 'sh', '-c', 'echo hi > /new; rm /etc/passwd; mkdir /tmp/t']);
    assert.equal(run.code, 0, run.stderr);
    const diff = (await cli(['diff', 'inspected'])).stdout.split('\n');
    for (const line of ['A /new', 'D /etc/passwd', 'C /tmp', 'A /tmp/t', 'A /etc/hostname']) assert.ok(diff.includes(line), `${line} in ${diff.join(' | ')}`);

    const j = JSON.parse((await cli(['inspect', '--format', 'json', 'inspected'])).stdout);
    assert.equal(j.kind, 'container');
    assert.equal(j.state.status, 'exited');
    assert.equal(j.state.exitCode, 0);
    assert.equal(j.state.pid, null);
    assert.equal(j.limits.memory, 64 * 1024 * 1024);
    assert.deepEqual(j.spec.args, ['sh', '-c', 'echo hi > /new; rm /etc/passwd; mkdir /tmp/t']);
    assert.deepEqual(j.spec.user, { uid: 0, gid: 0, groups: [] });
    assert.deepEqual(j.mounts.map((m: { destination: string }) => m.destination), ['/', '/proc', '/dev', '/dev/pts', '/dev/shm', '/sys']);

    assert.equal((await cli(['cat', 'inspected:/new'])).stdout, 'hi\n');
    const file = join(scratch, 'container.tar');
    assert.equal((await cli(['export', 'inspected', '-o', file])).code, 0);
    const names = (await listLayer(await readFile(file))).map((e) => e.header.name);
    assert.ok(names.includes('new') && names.includes('bin/busybox') && !names.includes('etc/passwd'));
    assert.ok(existsSync(file));
  });

  test('every command on the fixture images', async () => {
    const layouts = await fixtureLayouts();
    for (const [name, ref] of [['busybox', busybox], ['layered', layered]] as const) {
      const layout = join(layouts, name);
      const entry = await layoutEntry(layout);
      const i = JSON.parse((await cli(['inspect', '--format', 'json', ref])).stdout);
      assert.equal(i.digest, entry.digest, `${name}: the manifest pulled is the layout's`);
      assert.equal(sha256(i.manifest), entry.digest);
      const config = await readLayoutJSON<ImageConfig>(layout, JSON.parse(i.manifest).config.digest);
      assert.deepEqual(i.config, config);

      const h = JSON.parse((await cli(['history', '--format', 'json', ref])).stdout);
      assert.deepEqual(h.history.map((r: { createdBy: string }) => r.createdBy), config.history!.map((r) => r.created_by));

      // Every tar entry of the bottom layer is an addition of that layer.
      const manifest = await readLayoutJSON<ImageManifest>(layout, entry.digest);
      const tarNames = (await listLayer(await readLayoutBlob(layout, manifest.layers[0]!.digest))).map((e) => `/${e.header.name.replace(/\/$/, '')}`);
      const l = JSON.parse((await cli(['layers', '--format', 'json', ref, '1'])).stdout);
      assert.deepEqual(l.layers[0].changes.map((c: { path: string }) => c.path), [...tarNames].sort(byComponents));
      assert.ok(l.layers[0].changes.every((c: { op: string }) => c.op === 'A'));

      const passwd = await cli(['cat', `${ref}:/etc/passwd`]);
      assert.match(passwd.stdout, /^root:x:0:0:root:\/root:\/bin\/sh\n/);
      const ls = await cli(['ls', `${ref}:/bin/`]);
      assert.match(ls.stdout, /^-rwxr-xr-x  0\/0 +\d+  2024-01-01 00:00  busybox$/m);
      assert.match(ls.stdout, /^lrwxrwxrwx  0\/0 +2024-01-01 00:00  sh -> busybox$/m);
    }
  });

  test('the layered fixture wastes the two bytes of the file its whiteout deletes', async () => {
    const e = JSON.parse((await cli(['inspect', '--efficiency', '--format', 'json', layered])).stdout).efficiency;
    // data/old/f ("f\n") is deleted with data/old; dive weighs the whiteout
    // as what it deletes, so every path's nodes agree and the score is 1.
    assert.equal(e.wastedBytes, 2);
    assert.deepEqual(e.layers.map((l: { wastedBytes: number }) => l.wastedBytes), [2, 0]);
    assert.equal(e.potentialWastedBytes, 0);
    assert.equal(e.score, 1);
    assert.equal((await cli(['inspect', '--fail-under', '1', layered])).code, 0);
  });

  test('export of a fixture is the tree umoci unpacks', { skip: existsSync(umoci) ? false : `needs ${umoci} (Debian package umoci)` }, async () => {
    const layouts = await fixtureLayouts();
    const bundle = join(scratch, 'bundle');
    await promisify(execFile)(umoci, ['unpack', '--image', `${join(layouts, 'layered')}:latest`, bundle]);
    const rootfs = join(bundle, 'rootfs');
    const file = join(scratch, 'layered.tar');
    assert.equal((await cli(['export', layered, '-o', file])).code, 0);

    const fromTar = (await listLayer(await readFile(file))).map((e) => {
      const h = e.header;
      const what = h.type === 'link' ? `link ${h.linkname}` : h.type === 'symlink' ? `symlink ${h.linkname}` : `${h.type} ${sha256(e.data)}`;
      return `/${h.name.replace(/\/$/, '')} ${(h.mode! & 0o7777).toString(8)} ${h.uid}:${h.gid} ${what}`;
    });
    const fromUmoci: string[] = [];
    const firstName = new Map<number, string>();
    const walk = async (dir: string, rel: string) => {
      for (const n of (await readdir(dir)).sort()) {
        const p = join(dir, n);
        const st = await lstat(p);
        const path = `${rel}/${n}`;
        let what: string;
        if (st.isDirectory()) what = `directory ${sha256('')}`;
        else if (st.isSymbolicLink()) what = `symlink ${await readlink(p)}`;
        else if (st.nlink > 1 && firstName.has(st.ino)) what = `link ${firstName.get(st.ino)!.slice(1)}`;
        else {
          if (st.nlink > 1) firstName.set(st.ino, path);
          what = `file ${sha256(await readFile(p))}`;
        }
        fromUmoci.push(`${path} ${(st.mode & 0o7777).toString(8)} ${st.uid}:${st.gid} ${what}`);
        if (st.isDirectory()) await walk(p, path);
      }
    };
    await walk(rootfs, '');
    assert.deepEqual(fromTar, fromUmoci);
  });

  test('a running container\'s files are not read while its processes can change them', async () => {
    const stop = new AbortController();
    const running = runCli(['run', '--name', 'busy', busybox, 'sleep', '60'], { root, signal: stop.signal });
    try {
      let state = '';
      for (let i = 0; i < 100 && state !== 'running'; i++) {
        const j = await cli(['inspect', '--format', 'json', '--type', 'container', 'busy']);
        state = j.code === 0 ? JSON.parse(j.stdout).state.status : '';
        if (state !== 'running') await new Promise((r) => setTimeout(r, 100));
      }
      assert.equal(state, 'running');
      for (const args of [['cat', 'busy:/etc/passwd'], ['export', 'busy', '-o', join(scratch, 'busy.tar')], ['diff', 'busy'], ['ls', 'busy:/']]) {
        const r = await cli(args);
        assert.equal(r.code, 125, args.join(' '));
        assert.match(r.stderr, /^minidock: container busy is running or starting: its files change while they are read\nhint: /);
      }
      assert.equal(existsSync(join(scratch, 'busy.tar')), false);
    } finally {
      stop.abort();
      await running;
      await cli(['rm', '-f', 'busy']);
    }
  });

  test('names nothing the store holds: one line, exit 125', async () => {
    const r = await cli(['inspect', 'nothing-here']);
    assert.equal(r.code, 125);
    assert.equal(r.stderr.split('\n')[0], 'minidock: no such image or container: nothing-here');
    const f = await cli(['layers', '--format', 'yaml', crafted]);
    assert.equal(f.code, 125);
    assert.match(f.stderr, /^minidock: unsupported format "yaml"/);
  });
});
