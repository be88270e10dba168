import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { progressRenderer } from '../../src/cli/progress.js';

const a = `sha256:${'a'.repeat(64)}`;
const b = `sha256:${'b'.repeat(64)}`;

function fakeStream(isTTY: boolean): NodeJS.WriteStream & { text: string } {
  const s = { isTTY, text: '', write(chunk: string) { s.text += chunk; return true; } };
  return s as unknown as NodeJS.WriteStream & { text: string };
}

describe('progressRenderer', () => {
  test('prints one plain line per finished layer when not on a terminal', () => {
    const out = fakeStream(false);
    const r = progressRenderer(out, { quiet: false });
    r.update({ digest: a, phase: 'waiting', total: 10, complete: 0 });
    r.update({ digest: a, phase: 'downloading', total: 10, complete: 5 });
    r.update({ digest: b, phase: 'exists', total: 4, complete: 4 });
    r.update({ digest: a, phase: 'complete', total: 10, complete: 10 });
    r.update({ digest: a, phase: 'complete', total: 10, complete: 10 });
    r.done();
    assert.equal(out.text, 'bbbbbbbbbbbb: Already exists\naaaaaaaaaaaa: Pull complete\n');
  });

  test('draws a bar per layer on a terminal, redrawn in place', () => {
    const out = fakeStream(true);
    const r = progressRenderer(out, { quiet: false });
    r.update({ digest: a, phase: 'downloading', total: 2_000_000, complete: 1_000_000 });
    r.update({ digest: b, phase: 'waiting', total: 4, complete: 0 });
    r.done();
    const lines = out.text.split('\n');
    assert.equal(lines[0], `\x1b[2Kaaaaaaaaaaaa: Downloading [${'='.repeat(19)}>${' '.repeat(20)}] 1MB/2MB`);
    assert.equal(lines[1], '\x1b[2Kbbbbbbbbbbbb: Waiting');

    r.update({ digest: a, phase: 'complete', total: 2_000_000, complete: 2_000_000 });
    r.done();
    // The second frame moves the cursor up over the two lines of the first.
    assert.ok(out.text.includes('\x1b[2A\x1b[2Kaaaaaaaaaaaa: Pull complete\n'), JSON.stringify(out.text));
  });

  test('prints nothing when quiet', () => {
    const out = fakeStream(true);
    const r = progressRenderer(out, { quiet: true });
    r.update({ digest: a, phase: 'complete', total: 1, complete: 1 });
    r.done();
    assert.equal(out.text, '');
  });
});
