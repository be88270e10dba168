/**
 * Concurrency between real minidock processes sharing one store: parallel
 * pulls, runs and rmi of images that share a layer never delete a layer
 * in use and never unpack one twice at once.
 */
import assert from 'node:assert/strict';
import { readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { cliPath, repoRoot, runCli, type CliResult } from '../helpers/cli.js';
import { fixtureSuite } from '../helpers/fixture-registry.js';
import { missingTools } from '../helpers/registry.js';
import { assertBlobsVerify, assertLayersComplete } from '../helpers/store-check.js';

const skip = process.getuid?.() !== 0 ? 'needs root (namespaces, overlay, cgroups)' : missingTools();

/** Starts the CLI with its stdin open; `done` settles when it exits. */
function startCli(args: string[], root: string): { child: ChildProcessWithoutNullStreams; done: Promise<CliResult> } {
  const child = spawn(process.execPath, ['--', cliPath, ...args], { cwd: repoRoot, env: { ...process.env, MINIDOCK_ROOT: root } });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (c: Buffer) => (stdout += c.toString()));
  child.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
  const done = new Promise<CliResult>((res) => child.once('close', (code, signal) => res({ code, signal, stdout, stderr })));
  return { child, done };
}

describe('minidock processes sharing a store', { skip }, () => {
  const s = fixtureSuite();
  const cli = (args: string[]) => runCli(args, { root: s.root });
  const ok = (r: CliResult, what: string) => assert.equal(r.code, 0, `${what}: ${r.stderr}`);

  test('parallel pulls of images sharing a layer unpack it once', async () => {
    for (let round = 0; round < 3; round++) {
      const empty = await cli(['system', 'prune', '-a', '-f']);
      ok(empty, 'prune');
      assert.deepEqual((await readdir(join(s.root, 'layers'))).filter((n) => /^[0-9a-f]{64}$/.test(n)), []);

      // busybox and multiarch (amd64) share their only layer; two pulls of
      // each, four processes at once.
      const pulls = await Promise.all([s.busybox, s.multiarch, s.busybox, s.multiarch].map((ref) => cli(['pull', ref])));
      pulls.forEach((r, i) => ok(r, `pull ${i}`));
      const lines = pulls.flatMap((r) => r.stderr.split('\n')).filter((l) => /^[0-9a-f]{12}: (Pull complete|Already exists)$/.test(l));
      const shared = new Set(lines.map((l) => l.slice(0, 12)));
      assert.equal(shared.size, 1, 'one layer in all');
      assert.equal(lines.length, 4, 'each pull reports the layer once');
      assert.equal(lines.filter((l) => l.endsWith('Pull complete')).length, 1, `exactly one pull unpacked it:\n${lines.join('\n')}`);
      await assertBlobsVerify(s.root);
      assert.equal(await assertLayersComplete(s.root), 1);
    }
  });

  test('rmi -f of images whose containers run keeps their layers; a pull meanwhile is unaffected', async () => {
    for (let round = 0; round < 3; round++) {
      ok(await cli(['pull', '-q', s.busybox]), 'pull busybox');
      ok(await cli(['pull', '-q', s.multiarch]), 'pull multiarch');
      const layers = async () => (await readdir(join(s.root, 'layers'))).filter((n) => /^[0-9a-f]{64}$/.test(n)).sort();
      const sharedLayer = await layers();
      assert.equal(sharedLayer.length, 1);

      // Two containers of the two images wait on stdin while both images
      // are removed with -f and another image is pulled.
      const runs = [
        startCli(['run', '-i', '--rm', '--name', `a${round}`, s.busybox, 'sh', '-c', 'read x; cat /bin/busybox | wc -c'], s.root),
        startCli(['run', '-i', '--rm', '--name', `b${round}`, s.multiarch, 'sh', '-c', 'read x; echo $FIXTURE'], s.root),
      ];
      for (let ps = ''; !(ps.includes(`a${round}\n`) && ps.includes(`b${round}\n`)); ) ps = (await cli(['ps'])).stdout;
      const [rmiA, rmiB, pull] = await Promise.all([
        cli(['rmi', '-f', s.busybox]),
        cli(['rmi', '-f', s.multiarch]),
        cli(['pull', '-q', s.layered]),
      ]);
      ok(rmiA!, 'rmi busybox');
      ok(rmiB!, 'rmi multiarch');
      ok(pull!, 'pull layered');
      assert.doesNotMatch((await cli(['images'])).stdout, /busybox|multiarch/);
      assert.ok((await layers()).includes(sharedLayer[0]!), 'the running containers\' layer stays');

      for (const r of runs) r.child.stdin.end('go\n');
      const [a, b] = await Promise.all(runs.map((r) => r.done));
      ok(a!, 'run busybox');
      assert.match(a!.stdout, /^[1-9]\d*\n$/);
      ok(b!, 'run multiarch');
      assert.equal(b!.stdout, 'amd64\n');
      await assertBlobsVerify(s.root);
      await assertLayersComplete(s.root);
      ok(await cli(['system', 'check']), 'system check');

      // Once no container uses it, the layer is garbage that prune frees.
      ok(await cli(['system', 'prune', '-f']), 'prune');
      assert.ok(!(await layers()).includes(sharedLayer[0]!), 'the layer is freed once unused');
      ok(await cli(['rmi', s.layered]), 'rmi layered');
    }
  });
});
