/**
 * Bounded memory: a generated layer of 200,000 entries walked, merged and
 * measured with the JavaScript heap capped at 40 MB, far below what one
 * object per entry would take. The bench script does the work (and reports
 * its peak memory, see docs/benchmarks.md); this test runs it.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { promisify } from 'node:util';
import { repoRoot } from '../helpers/cli.js';

// File creation is the slow part, and a busy disk makes it slower still:
// the layer is generated on a tmpfs when there is one.
const scratch = existsSync('/dev/shm') ? ['--dir', '/dev/shm'] : [];

const skip = process.getuid?.() !== 0 ? 'needs root (the generated layer has whiteouts and opaque directories)' : false;

describe('inspect on 200,000 entries', { skip }, () => {
  test('walks, diffs and measures them with a 40 MB heap', async () => {
    const script = join(repoRoot, 'dist', 'bench', 'inspect-memory.js');
    const { stdout } = await promisify(execFile)(
      process.execPath,
      ['--max-old-space-size=40', script, '--entries', '200000', '--no-export', ...scratch],
      { maxBuffer: 1 << 20 },
    );
    const r = JSON.parse(stdout) as Record<string, { changes?: number; entries?: number; wastedBytes?: number }>;
    assert.equal(r.layer1!.changes, 200_000, 'every entry of layer 1 is an addition');
    // Layer 2: d0 whited out; d1 opaque (its 999 files deleted, one added);
    // d2..d199 each changed with 10 of its files.
    assert.equal(r.layer2!.changes, 1 + (1 + 999 + 1) + 198 * 11);
    assert.equal(r.merged!.entries, 200_000 - 1000 - 999 + 1);
    // Hidden: d0's and d1's 100-byte files (100 each), and the 10 files
    // overwritten in each of d2..d199 (f0, f100, …: all 100-byte ones).
    assert.equal(r.efficiency!.wastedBytes, (100 + 100 + 198 * 10) * 100);
  });
});
