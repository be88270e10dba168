import assert from 'node:assert/strict';
import { existsSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { makeTestRoot, repoRoot, runCli } from './cli.js';

const built = existsSync(join(repoRoot, 'dist', 'src', 'cli', 'main.js'));
const skip = built ? false : 'needs the built CLI (dist/src/cli/main.js), not there yet';

describe('runCli', () => {
  it('runs bin/minidock.js and returns its exit status and output', { skip }, async () => {
    const root = makeTestRoot();
    try {
      const r = await runCli(['--help'], { root });
      assert.equal(r.code, 0);
      assert.match(r.stdout, /minidock/);
      assert.equal(r.signal, null);
    } finally {
      rmSync(root, { recursive: true, force: true });
    }
  });
});
