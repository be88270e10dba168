/**
 * What minidock does when its results cannot be written (a reader that
 * went away ends it as SIGPIPE would, 141; any other failure is one line
 * and minidock's own error, 125), and when a system call is refused.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { chmodSync, closeSync, openSync } from 'node:fs';
import { rm } from 'node:fs/promises';
import { after, describe, test } from 'node:test';
import { cliPath, makeTestRoot, repoRoot } from '../helpers/cli.js';

describe('writing results to stdout', () => {
  const root = makeTestRoot();
  after(() => rm(root, { recursive: true, force: true }));

  const images = (stdout: 'pipe' | number) =>
    spawn(process.execPath, ['--', cliPath, '--root', root, 'images'], { cwd: repoRoot, stdio: ['ignore', stdout, 'pipe'] });
  const finished = (child: ReturnType<typeof images>) =>
    new Promise<{ code: number | null; stderr: string }>((resolve) => {
      let stderr = '';
      child.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
      child.once('close', (code) => resolve({ code, stderr }));
    });

  test('a full disk is one line of error, exit 125', async () => {
    const full = openSync('/dev/full', 'w');
    try {
      const r = await finished(images(full));
      assert.equal(r.code, 125);
      assert.equal(r.stderr, 'minidock: write results to stdout: ENOSPC: no space left on device, write\n');
    } finally {
      closeSync(full);
    }
  });

  test('a reader that went away ends it as SIGPIPE would, silently', async () => {
    const child = images('pipe');
    // Closed before minidock has started: its first write meets EPIPE.
    child.stdout!.destroy();
    const r = await finished(child);
    assert.equal(r.code, 141);
    assert.equal(r.stderr, '');
  });
});

describe('a system call refused', { skip: process.getuid?.() !== 0 ? 'needs root, to run minidock as another user' : false }, () => {
  const root = makeTestRoot();
  after(() => rm(root, { recursive: true, force: true }));

  test('is one line, with a hint when minidock does not run as root', async () => {
    const asNobody = (args: string[]) =>
      new Promise<{ code: number | null; stderr: string }>((resolve) => {
        const child = spawn('setpriv', ['--reuid=65534', '--regid=65534', '--clear-groups', process.execPath, '--', cliPath, '--root', root, ...args], {
          cwd: '/',
          stdio: ['ignore', 'ignore', 'pipe'],
        });
        let stderr = '';
        child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
        child.once('close', (code) => resolve({ code, stderr }));
      });
    // A store root created, then readable by others: its folders are not.
    const made = spawn(process.execPath, ['--', cliPath, '--root', root, 'images'], { stdio: 'ignore' });
    await new Promise((resolve) => made.once('close', resolve));
    chmodSync(root, 0o755);
    const r = await asNobody(['images']);
    assert.equal(r.code, 125);
    assert.equal(
      r.stderr,
      `minidock: EACCES: permission denied, scandir '${root}/images'\nhint: minidock needs root (namespaces, mounts, cgroups and file owners)\n`,
    );
  });
});
