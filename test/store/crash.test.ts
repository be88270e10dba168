/**
 * Crash safety: minidock is killed with SIGKILL at random points of a
 * pull, an unpack (load from an archive), a run and an rmi, 24 times in
 * all. After each kill, every blob must match its digest, every layer
 * directory marked complete must be complete, no lock may block the next
 * command, and the next pull must finish.
 */
import assert from 'node:assert/strict';
import { rm } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { makeTestRoot, runCli, type CliResult } from '../helpers/cli.js';
import { fixtureSuite } from '../helpers/fixture-registry.js';
import { missingTools } from '../helpers/registry.js';
import { assertBlobsVerify, assertLayersComplete } from '../helpers/store-check.js';

const skip = process.getuid?.() !== 0 ? 'needs root (namespaces, overlay, cgroups)' : missingTools();

const rounds = 6;

describe('minidock killed at random points', { skip }, () => {
  const s = fixtureSuite();
  let archive: string;
  let scratch: string;
  /** How long `minidock --version` takes: Node's and minidock's start-up, before any work. */
  let startup: number;
  const cli = (args: string[]) => runCli(args, { root: s.root });
  const ok = async (args: string[]): Promise<CliResult> => {
    const r = await cli(args);
    assert.equal(r.code, 0, `${args.join(' ')}: ${r.stderr}`);
    return r;
  };

  /** Runs args, killing it with SIGKILL after delay ms (when it still runs). */
  const killedAfter = async (args: string[], delay: number): Promise<CliResult> => {
    const ac = new AbortController();
    const timer = setTimeout(() => ac.abort(), delay);
    try {
      return await runCli(args, { root: s.root, signal: ac.signal });
    } finally {
      clearTimeout(timer);
    }
  };

  /** Makes sure ref is not in the store, so that a pull or load has work to do. */
  const absent = async (ref: string) => {
    await cli(['rmi', '-f', ref]); // fails when it is not there: fine
    await ok(['system', 'prune', '-f']);
  };

  /** What must hold after every kill. */
  const assertSound = async (what: string) => {
    await assertBlobsVerify(s.root);
    await assertLayersComplete(s.root);
    // The next commands take the same locks: a lock the killed process
    // kept would block them (and the test would time out).
    const pulled = await cli(['pull', '-q', s.layered]);
    assert.equal(pulled.code, 0, `pull after ${what}: ${pulled.stderr}`);
    const check = await cli(['system', 'check']);
    assert.equal(check.code, 0, `system check after ${what}: ${check.stdout}${check.stderr}`);
    await assertBlobsVerify(s.root);
    await assertLayersComplete(s.root);
  };

  before(async () => {
    scratch = makeTestRoot();
    const t0 = Date.now();
    await ok(['--version']);
    startup = Date.now() - t0;
    await ok(['pull', '-q', s.busybox]);
    await ok(['pull', '-q', s.layered]);
    archive = join(scratch, 'layered.tar');
    await ok(['save', '-o', archive, s.layered]);
  });

  after(async () => {
    if (scratch) await rm(scratch, { recursive: true, force: true });
  });

  const operations: { name: string; setup: () => Promise<void>; args: () => string[] }[] = [
    { name: 'pull', setup: () => absent(s.layered), args: () => ['pull', s.layered] },
    { name: 'unpack (load)', setup: () => absent(s.layered), args: () => ['load', '-i', archive] },
    { name: 'run', setup: async () => {}, args: () => ['run', '--rm', s.busybox, 'sh', '-c', 'echo x > /f; cat /bin/busybox > /copy'] },
    { name: 'rmi', setup: async () => void (await ok(['pull', '-q', s.layered])), args: () => ['rmi', s.layered] },
  ];

  for (const op of operations) {
    test(`a ${op.name} killed ${rounds} times at random points leaves a sound store`, async (t) => {
      // One undisturbed run gives the span in which to aim the kills.
      await op.setup();
      const started = Date.now();
      await ok(op.args());
      const span = Math.max(50, Date.now() - started);

      for (let i = 0; i < rounds; i++) {
        await op.setup();
        // Aim past most of the start-up, where the work is, and now and
        // then past the end.
        const from = Math.min(span, startup) * 0.8;
        const delay = Math.floor(from + Math.random() * (span - from) * 1.1);
        const r = await killedAfter(op.args(), delay);
        t.diagnostic(`${op.name} round ${i + 1}: killed after ${delay} ms of ~${span} ms: ${r.signal ?? `exit ${r.code}`}`);
        assert.ok(r.signal === 'SIGKILL' || r.code === 0, `${op.name} either was killed or finished: ${r.stderr}`);
        await assertSound(`${op.name} killed after ${delay} ms`);
      }
      // Containers of killed runs stay behind, as Docker's do; they go with prune.
      await ok(['container', 'prune', '-f']);
      const run = await ok(['run', '--rm', s.busybox, 'echo', 'alive']);
      assert.equal(run.stdout, 'alive\n');
    });
  }
});
