/**
 * Keeping the store in shape through the CLI, against images pulled from a
 * real registry: system df, system check [--repair], and the prunes.
 */
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdir, readdir, readFile, rm, stat, unlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { makeTestRoot, runCli } from '../helpers/cli.js';
import { fixtureSuite } from '../helpers/fixture-registry.js';
import { assertBlobsVerify, assertLayersComplete } from '../helpers/store-check.js';
import { missingTools } from '../helpers/registry.js';

const skip = process.getuid?.() !== 0 ? 'needs root (namespaces, overlay, cgroups)' : missingTools();

/** The image ids (full hex) the store holds. */
async function imageIds(root: string): Promise<string[]> {
  return (await readdir(join(root, 'images'))).filter((n) => n.endsWith('.json')).map((n) => n.slice(0, -5)).sort();
}

async function exists(path: string): Promise<boolean> {
  return (await stat(path).catch(() => undefined)) !== undefined;
}

describe('minidock system and prune commands', { skip }, () => {
  const s = fixtureSuite();
  const cli = (args: string[], input?: string) => runCli(args, { root: s.root, input });

  const pull = async (ref: string) => {
    const r = await cli(['pull', '-q', ref]);
    assert.equal(r.code, 0, r.stderr);
    return r;
  };
  const idOf = async (ref: string) => {
    const r = await cli(['images', '--no-trunc']);
    const name = ref.replace(/:latest$/, '');
    const line = r.stdout.split('\n').find((l) => l.startsWith(`${name} `));
    assert.ok(line, `images lists ${ref}:\n${r.stdout}`);
    return /sha256:([0-9a-f]{64})/.exec(line)![1]!;
  };

  test('system df counts images, containers and layers, and splits shared from unique bytes', async () => {
    await pull(s.busybox);
    await pull(s.multiarch);
    const run = await cli(['run', '--name', 'df-user', s.busybox, 'sh', '-c', 'echo 12345 > /written']);
    assert.equal(run.code, 0, run.stderr);

    // busybox and multiarch's amd64 image share their one layer.
    const layerDirs = (await readdir(join(s.root, 'layers'))).filter((n) => n !== 'l');
    assert.equal(layerDirs.length, 1);
    const size = (JSON.parse(await readFile(join(s.root, 'layers', layerDirs[0]!, 'layer.json'), 'utf8')) as { size: number }).size;
    const { humanSize } = await import('../../src/cli/output.js');

    const df = await cli(['system', 'df']);
    assert.equal(df.code, 0, df.stderr);
    const rows = df.stdout.trim().split('\n').map((l) => l.split(/\s{2,}/));
    assert.deepEqual(rows[0], ['TYPE', 'TOTAL', 'ACTIVE', 'SIZE', 'RECLAIMABLE']);
    assert.deepEqual(rows[1], ['Images', '2', '1', humanSize(size), '0B (0%)']);
    // The container's upper directory holds /written (6 bytes), /etc/hostname and /etc/hosts.
    assert.equal(rows[2]![0], 'Containers');
    assert.deepEqual(rows[2]!.slice(1, 3), ['1', '0']);
    assert.deepEqual(rows[3], ['Layers', '1', '1', humanSize(size), '0B (0%)']);

    const v = await cli(['system', 'df', '-v']);
    assert.equal(v.code, 0, v.stderr);
    assert.match(v.stdout, /^Images space usage:\n\nREPOSITORY\s+TAG\s+IMAGE ID\s+CREATED\s+SIZE\s+SHARED SIZE\s+UNIQUE SIZE\s+CONTAINERS\n/);
    const sized = humanSize(size).replace('.', '\\.');
    assert.match(v.stdout, new RegExp(`library/busybox\\s+latest\\s+[0-9a-f]{12}\\s+.+ago\\s+${sized}\\s+${sized}\\s+0B\\s+1\\n`));
    assert.match(v.stdout, new RegExp(`library/multiarch\\s+latest\\s+[0-9a-f]{12}\\s+.+ago\\s+${sized}\\s+${sized}\\s+0B\\s+0\\n`));
    assert.match(v.stdout, /Containers space usage:\n\nCONTAINER ID\s+IMAGE\s+COMMAND\s+SIZE\s+CREATED\s+STATUS\s+NAMES\n[0-9a-f]{12}\s+.*df-user\n/);
    assert.match(v.stdout, new RegExp(`Layers space usage:\\n\\nLAYER ID\\s+SIZE\\s+IMAGES\\s+CONTAINERS\\n${layerDirs[0]!.slice(0, 12)}\\s+${sized}\\s+2\\s+1\\n`));
    assert.equal((await cli(['rm', 'df-user'])).code, 0);
  });

  test('system check finds a corrupted blob and an incomplete layer; --repair removes them and a pull restores them', async () => {
    await pull(s.layered);
    const clean = await cli(['system', 'check']);
    assert.equal(clean.code, 0, clean.stdout + clean.stderr);
    assert.equal(clean.stdout, '');

    // Corrupt the shared busybox layer's blob in place (same size), and take
    // a file out of layered's second layer.
    const blobs = join(s.root, 'blobs', 'sha256');
    const layerBlob = (await Promise.all((await readdir(blobs)).map(async (hex) => ({ hex, size: (await stat(join(blobs, hex))).size }))))
      .sort((a, b) => b.size - a.size)[0]!.hex;
    const bytes = await readFile(join(blobs, layerBlob));
    bytes[100] ^= 0xff;
    await writeFile(join(blobs, layerBlob), bytes);
    let broken: string | undefined;
    for (const hex of (await readdir(join(s.root, 'layers'))).filter((n) => /^[0-9a-f]{64}$/.test(n))) {
      if (await exists(join(s.root, 'layers', hex, 'diff', 'etc', 'motd'))) {
        await unlink(join(s.root, 'layers', hex, 'diff', 'etc', 'motd'));
        broken = hex;
      }
    }
    assert.ok(broken !== undefined, 'layered has a layer holding etc/motd');

    const found = await cli(['system', 'check']);
    assert.equal(found.code, 1, found.stderr);
    assert.match(found.stdout, new RegExp(`^blob sha256:${layerBlob}: content hashes to sha256:[0-9a-f]{64}$`, 'm'));
    assert.match(found.stdout, new RegExp(`^layer sha256:${broken}: its files differ from what was unpacked`, 'm'));
    assert.match(found.stderr, /^minidock: 2 problems found\nhint: run minidock system check --repair/);
    // Checking changes nothing.
    assert.ok(await exists(join(blobs, layerBlob)));

    const repaired = await cli(['system', 'check', '--repair']);
    assert.match(repaired.stdout, new RegExp(`^blob sha256:${layerBlob}: .*\\(repaired\\)$`, 'm'));
    assert.match(repaired.stdout, new RegExp(`^layer sha256:${broken}: .*\\(repaired\\)$`, 'm'));
    assert.match(repaired.stdout, /^image sha256:[0-9a-f]{64}: missing /m);
    assert.equal(repaired.code, 1, 'images left incomplete are reported');
    assert.match(repaired.stderr, /^minidock: 2 problems repaired, [1-9]\d* problems? left\nhint: pull the images named above again/);
    assert.equal(await exists(join(blobs, layerBlob)), false);
    assert.equal(await exists(join(s.root, 'layers', broken!)), false);
    await assertBlobsVerify(s.root);
    await assertLayersComplete(s.root);

    for (const ref of [s.busybox, s.layered, s.multiarch]) await pull(ref);
    const again = await cli(['system', 'check']);
    assert.equal(again.code, 0, again.stdout + again.stderr);
    const run = await cli(['run', '--rm', s.layered, 'cat /etc/motd']);
    assert.equal(run.code, 0, run.stderr);
    assert.ok(await exists(join(blobs, layerBlob)), 'the pull fetched the removed blob again');
  });

  test('a store of a newer format is refused, naming both versions', async () => {
    const newer = makeTestRoot();
    try {
      const first = await runCli(['images', '-q'], { root: newer });
      assert.equal(first.code, 0, first.stderr);
      assert.equal(await readFile(join(newer, 'VERSION'), 'utf8'), '1\n');
      await writeFile(join(newer, 'VERSION'), '2\n');
      const refused = await runCli(['images'], { root: newer });
      assert.equal(refused.code, 125);
      assert.equal(refused.stdout, '');
      assert.equal(
        refused.stderr,
        `minidock: open store ${JSON.stringify(newer)}: format version 2 is newer than this minidock understands (1)\n` +
          'hint: upgrade minidock, or point --root at another directory\n',
      );
      await writeFile(join(newer, 'VERSION'), 'banana\n');
      assert.equal((await runCli(['images'], { root: newer })).code, 125);
    } finally {
      await rm(newer, { recursive: true, force: true });
    }
  });

  test('container prune removes stopped containers and leaves a running one', async () => {
    const stopped = await cli(['run', '--name', 'stopped', s.busybox, 'true']);
    assert.equal(stopped.code, 0, stopped.stderr);
    const ac = new AbortController();
    const running = runCli(['run', '--name', 'running', s.busybox, 'sleep', '60'], { root: s.root, signal: ac.signal });
    try {
      let ps = '';
      while (!/running\n/.test(ps)) ps = (await cli(['ps'])).stdout;
      const ids = (await cli(['ps', '-a', '-q', '--no-trunc'])).stdout.trim().split('\n');
      const prune = await cli(['container', 'prune', '-f']);
      assert.equal(prune.code, 0, prune.stderr);
      assert.match(prune.stdout, /^Deleted Containers:\n[0-9a-f]{64}\n\nTotal reclaimed space: \d+(\.\d+)?k?B\n$/);
      const deleted = prune.stdout.split('\n')[1]!;
      assert.ok(ids.includes(deleted));
      const left = (await cli(['ps', '-a'])).stdout;
      assert.match(left, /running\n/);
      assert.doesNotMatch(left, /stopped/);
      assert.equal(await exists(join(s.root, 'containers', deleted)), false);
      assert.equal(await exists(join(s.root, 'names', 'stopped')), false);
    } finally {
      assert.equal((await cli(['rm', '-f', 'running'])).code, 0);
      ac.abort();
      await running;
    }
  });

  test('image prune removes dangling images only; -a removes every image no container uses', async () => {
    // An image pulled by digest has no tag: it is dangling.
    const digest = /Digest: (sha256:[0-9a-f]{64})/.exec((await cli(['pull', s.layered])).stderr)![1]!;
    assert.equal((await cli(['rmi', s.layered])).code, 0);
    await pull(`${s.registry.host}/library/layered@${digest}`);
    const layeredId = await idOfUntagged();
    const busyboxId = await idOf(s.busybox);
    const keeper = await cli(['run', '--name', 'keeper', s.busybox, 'true']);
    assert.equal(keeper.code, 0, keeper.stderr);

    const prune = await cli(['image', 'prune', '-f']);
    assert.equal(prune.code, 0, prune.stderr);
    assert.match(prune.stdout, new RegExp(`^Deleted Images:\\ndeleted: sha256:${layeredId}\\n(deleted: sha256:[0-9a-f]{64}\\n)+\\nTotal reclaimed space: [0-9.]+[kM]?B\\n$`));
    assert.deepEqual(await imageIds(s.root), [busyboxId, await idOf(s.multiarch)].sort());
    await assertBlobsVerify(s.root);
    await assertLayersComplete(s.root);

    const nothing = await cli(['image', 'prune', '-f']);
    assert.equal(nothing.stdout, 'Total reclaimed space: 0B\n');

    const all = await cli(['image', 'prune', '-a', '-f']);
    assert.equal(all.code, 0, all.stderr);
    assert.match(all.stdout, /^Deleted Images:\nuntagged: 127\.0\.0\.1:\d+\/library\/multiarch:latest\ndeleted: sha256:[0-9a-f]{64}\n\nTotal reclaimed space: [0-9.]+k?B\n$/);
    // busybox stays (a container uses it), and with it the layer multiarch shared.
    assert.deepEqual(await imageIds(s.root), [busyboxId]);
    assert.equal((await readdir(join(s.root, 'layers'))).filter((n) => /^[0-9a-f]{64}$/.test(n)).length, 1);
    const run = await cli(['run', '--rm', s.busybox, 'true']);
    assert.equal(run.code, 0, run.stderr);
    assert.equal((await cli(['rm', 'keeper'])).code, 0);

    async function idOfUntagged(): Promise<string> {
      const r = await cli(['images', '--no-trunc']);
      const line = r.stdout.split('\n').find((l) => l.startsWith('<none>'));
      assert.ok(line, r.stdout);
      return /sha256:([0-9a-f]{64})/.exec(line)![1]!;
    }
  });

  test('the prunes ask first: anything but y cancels (exit 1) and removes nothing', async () => {
    const stopped = await cli(['run', '--name', 'asked', s.busybox, 'true']);
    assert.equal(stopped.code, 0, stopped.stderr);
    for (const answer of ['', 'n\n', 'nope\n']) {
      const r = await cli(['system', 'prune'], answer);
      assert.equal(r.code, 1);
      assert.equal(r.stdout, '');
      assert.equal(
        r.stderr,
        'WARNING! This will remove:\n  - all stopped containers\n  - all dangling images\n' +
          '  - all blobs and layers that no image or container uses\nAre you sure you want to continue? [y/N] \n' +
          'minidock: system prune has been cancelled\n',
      );
    }
    assert.match((await cli(['ps', '-a'])).stdout, /asked\n/);
    const yes = await cli(['container', 'prune'], 'y\n');
    assert.equal(yes.code, 0, yes.stderr);
    assert.match(yes.stdout, /^Deleted Containers:\n[0-9a-f]{64}\n/);
    assert.doesNotMatch((await cli(['ps', '-a'])).stdout, /asked/);
  });

  test('system prune removes unreferenced blobs and layers, what dead processes left in tmp/ and partial downloads', async () => {
    // An orphan blob (right digest, no image), an orphan layer, and a
    // partial download of a process that no longer exists.
    const orphan = Buffer.from('orphan blob\n');
    const orphanHex = createHash('sha256').update(orphan).digest('hex');
    await writeFile(join(s.root, 'blobs', 'sha256', orphanHex), orphan);
    const layerHex = createHash('sha256').update('orphan layer').digest('hex');
    await mkdir(join(s.root, 'layers', layerHex, 'diff', 'x'), { recursive: true });
    await writeFile(join(s.root, 'layers', layerHex, 'layer.json'), JSON.stringify({ diffID: `sha256:${layerHex}`, size: 0, entries: 1, unpacked: '' }));
    const dead = spawnSync('true').pid!;
    const leftover = join(s.root, 'tmp', `blob-abc.${dead}.0011aabb`);
    await writeFile(leftover, 'partial');
    const live = join(s.root, 'tmp', `blob-abc.${process.pid}.0011aabb`);
    await writeFile(live, 'in flight');
    const kept = join(s.root, 'tmp', `partial-sha256-${orphanHex}`);
    await writeFile(kept, 'a download kept for the next pull');
    const blobsBefore = await readdir(join(s.root, 'blobs', 'sha256'));

    const r = await cli(['system', 'prune', '-f']);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, new RegExp(`Deleted Blobs and Layers:\\nsha256:${orphanHex}\\nlayer sha256:${layerHex}\\n\\nTotal reclaimed space: \\d+B\\n$`));
    assert.equal(await exists(join(s.root, 'blobs', 'sha256', orphanHex)), false);
    assert.equal(await exists(join(s.root, 'layers', layerHex)), false);
    assert.equal(await exists(leftover), false);
    assert.equal(await exists(kept), false, 'a kept partial download goes too');
    assert.equal(await exists(live), true, 'a live process\'s temp file stays');
    await unlink(live);
    assert.deepEqual((await readdir(join(s.root, 'blobs', 'sha256'))).sort(), blobsBefore.filter((h) => h !== orphanHex).sort());
    const run = await cli(['run', '--rm', s.busybox, 'true']);
    assert.equal(run.code, 0, run.stderr);
    assert.equal((await cli(['system', 'check'])).code, 0);
  });

  test('a container still starting is kept by the prunes and refused by rm until its minidock is gone', async () => {
    const made = await cli(['run', '--name', 'starting', s.busybox, 'true']);
    assert.equal(made.code, 0, made.stderr);
    const inspected = JSON.parse((await cli(['inspect', '--format', 'json', 'starting'])).stdout) as { id: string };
    const id = inspected.id.replace(/^sha256:/, '');
    // The moment between a run's record and its process: status "created",
    // owned by a live minidock (a stand-in process here, so the moment lasts).
    const owner = spawn('sleep', ['60'], { stdio: 'ignore' });
    const { processStartTime } = await import('../../src/runtime/process.js');
    const statePath = join(s.root, 'containers', id, 'state.json');
    const rec = JSON.parse(await readFile(statePath, 'utf8'));
    assert.equal(rec.name, 'starting');
    delete rec.exitCode;
    delete rec.finished;
    await writeFile(statePath, JSON.stringify({ ...rec, status: 'created', owner: { pid: owner.pid, start: processStartTime(owner.pid!) } }));
    try {
      assert.equal((await cli(['container', 'prune', '-f'])).code, 0);
      assert.equal((await cli(['system', 'prune', '-a', '-f'])).code, 0);
      assert.match((await cli(['ps', '-a'])).stdout, /starting\n/);
      assert.ok((await imageIds(s.root)).includes(rec.imageId.slice(7)), 'its image stays');
      await assertLayersComplete(s.root);
      const rm = await cli(['rm', 'starting']);
      assert.equal(rm.code, 125);
      assert.match(rm.stderr, /^minidock: cannot remove container starting: container is starting\n/);
    } finally {
      owner.kill('SIGKILL');
      await new Promise((r) => owner.once('exit', r));
    }
    // Its minidock gone, the container is a leftover like any other.
    const prune = await cli(['container', 'prune', '-f']);
    assert.equal(prune.code, 0, prune.stderr);
    assert.match(prune.stdout, new RegExp(`^Deleted Containers:\n${id}\n`));
  });

  test('an empty container name matches nothing', async () => {
    const r = await cli(['rm', '']);
    assert.equal(r.code, 125);
    assert.equal(r.stderr, 'minidock: a container name or id cannot be empty\n');
  });

  test('system check finds records that do not parse and tags naming no image; --repair clears them', async () => {
    const fakeHex = createHash('sha256').update('no such image').digest('hex');
    await writeFile(join(s.root, 'images', `${fakeHex}.json`), '{"id": "sha256:');
    const repos = JSON.parse(await readFile(join(s.root, 'repositories.json'), 'utf8'));
    await writeFile(join(s.root, 'repositories.json'), JSON.stringify({ ...repos, 'example.test/ghost:1': `sha256:${'0'.repeat(64)}` }));
    const ghost = 'f'.repeat(64);
    await mkdir(join(s.root, 'containers', ghost), { recursive: true });
    await writeFile(join(s.root, 'containers', ghost, 'state.json'), 'garbage');
    assert.equal((await cli(['ps', '-a'])).code, 125, 'a broken record stops ps');

    const found = await cli(['system', 'check']);
    assert.equal(found.code, 1, found.stderr);
    assert.match(found.stdout, new RegExp(`^record images/${fakeHex}\\.json: not valid JSON$`, 'm'));
    assert.match(found.stdout, /^record tag example\.test\/ghost:1: names image sha256:0{64}, which the store does not hold$/m);
    assert.match(found.stdout, new RegExp(`^record container ${ghost}: state\\.json is not valid JSON$`, 'm'));

    const repaired = await cli(['system', 'check', '--repair']);
    assert.match(repaired.stdout, /\(repaired\)$/m);
    assert.equal((await cli(['system', 'check'])).code, 0);
    assert.equal((await cli(['ps', '-a'])).code, 0);
    const tags = JSON.parse(await readFile(join(s.root, 'repositories.json'), 'utf8'));
    assert.deepEqual(tags, repos, 'the good tags stay, the ghost goes');
  });
});
