import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { changeLine, entrySuffix } from '../../src/cli/commands/inspect-target.js';
import { printable } from '../../src/cli/output.js';

describe('printable', () => {
  const cases: [string, string, string][] = [
    ['plain text unchanged', 'usr/bin/sh', 'usr/bin/sh'],
    ['unicode kept', 'données/ü', 'données/ü'],
    ['newline, tab and return named', 'a\nb\tc\rd', 'a\\nb\\tc\\rd'],
    ['escape and other C0 as hex', 'x\x1b[31my\x00', 'x\\x1b[31my\\x00'],
    ['DEL and C1 as hex', 'a\x7fb\x9bc', 'a\\x7fb\\x9bc'],
  ];
  for (const [name, input, want] of cases) test(name, () => assert.equal(printable(input), want));
});

describe('lines built from image names', () => {
  test('a file name cannot forge a line of its own nor drive the terminal', () => {
    const line = changeLine({ op: 'A', kind: 'file', path: 'x\nD /etc/passwd\x1b]0;t\x07', mode: 0o644, uid: 0, gid: 0, size: 1 });
    assert.equal(line.split('\n').length, 1);
    assert.doesNotMatch(line, /[\x00-\x1f]/);
    assert.match(line, /\/x\\nD \/etc\/passwd\\x1b\]0;t\\x07$/);
  });

  test('a link target is shown escaped', () => {
    assert.equal(entrySuffix({ target: '../\x1b[2J' }), ' -> ../\\x1b[2J');
  });
});
