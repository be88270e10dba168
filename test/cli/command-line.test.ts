/**
 * quickRunLine against commander: every `run` line the quick reader accepts
 * must read exactly as commander reads it through main.ts's own program
 * (the run action replaced by one that records what it was given), and
 * every line it leaves alone goes to commander.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import * as commander from 'commander';
import { quickRunLine } from '../../src/cli/command-line.js';
import { buildProgram } from '../../src/cli/main.js';

type Read = { globals: object; image: string; args: string[]; flags: object } | 'error' | 'no run';

/** What commander makes of args (argv without node and the script). */
async function viaCommander(args: string[]): Promise<Read> {
  let read: Read = 'no run';
  const program = buildProgram(commander, () => {}, async (globals, image, cmdArgs, flags) => {
    read = { globals: { ...globals }, image, args: cmdArgs, flags: { ...flags } };
    return 0;
  });
  const quiet = { writeOut: () => {}, writeErr: () => {}, outputError: () => {} };
  for (const cmd of [program, ...program.commands]) cmd.configureOutput(quiet);
  try {
    await program.parseAsync(args, { from: 'user' });
  } catch (err) {
    if (!(err instanceof commander.CommanderError)) throw err;
    return 'error';
  }
  return read;
}

async function assertSameAsCommander(args: string[]): Promise<boolean> {
  const quick = quickRunLine(args);
  if (quick === undefined) return false;
  assert.deepStrictEqual(quick, await viaCommander(args), `line ${JSON.stringify(args)}`);
  return true;
}

/** A small deterministic generator (mulberry32), so a failure can be replayed. */
function random(seed: number): () => number {
  let a = seed;
  return () => {
    a = (a + 0x6d2b79f5) | 0;
    let t = Math.imul(a ^ (a >>> 15), 1 | a);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

describe('quickRunLine', () => {
  test('reads the usual run lines, with the values commander gives', async () => {
    const lines = [
      ['run', 'busybox'],
      ['run', '--rm', 'busybox', 'true'],
      ['--root', '/r', '-D', 'run', '--rm', '-it', 'busybox', 'sh', '-c', 'echo hi'],
      ['--root=/r', '--config', 'c.json', '-vD', 'run', 'busybox'],
      ['run', '-e', 'A=1', '-eB=2', '--env=C', '--env', 'D', '--env-file', 'f', '--env-file=g', 'busybox'],
      ['run', '-ie', 'A=1', '-hbox', '--name=n', '-w', '/tmp', '-u', '1:2', 'busybox'],
      ['run', '--entrypoint', '', '-m', '6m', '--cpus', '0.5', '--pids-limit', '-1', 'busybox'],
      ['run', '--pull', 'never', '--platform=linux/amd64', '-q', 'busybox'],
      ['run', '--name', '--rm', 'busybox'],
      ['run', '--', 'busybox', '--rm', '-it'],
      ['run', 'busybox', '--', '-x'],
      ['run', ''],
    ];
    for (const line of lines) assert.ok(await assertSameAsCommander(line), `read quickly: ${JSON.stringify(line)}`);

    assert.deepStrictEqual(quickRunLine(['--root', '/r', 'run', '-it', '-e', 'A=1', 'busybox', 'sh', '-c', 'x']), {
      globals: { root: '/r' },
      image: 'busybox',
      args: ['sh', '-c', 'x'],
      flags: { env: ['A=1'], envFile: [], pull: 'missing', interactive: true, tty: true },
    });
  });

  test('leaves help, versions, other commands and anything malformed to commander', () => {
    const lines = [
      [],
      ['--help'],
      ['--version'],
      ['-h', 'run', 'busybox'],
      ['help', 'run'],
      ['pull', 'busybox'],
      ['--', 'run', 'busybox'],
      ['--bogus', 'run', 'busybox'],
      ['run'],
      ['run', '--rm'],
      ['run', '--help', 'busybox'],
      ['run', '--bogus', 'busybox'],
      ['run', '--rm=true', 'busybox'],
      ['run', '-itx', 'busybox'],
      ['run', '-i-', 'busybox'],
      ['run', '-1', 'busybox'],
      ['run', '--name'],
      ['run', '--', ],
      ['--root'],
    ];
    for (const line of lines) assert.equal(quickRunLine(line), undefined, JSON.stringify(line));
  });

  test('reads thousands of generated lines as commander does, or leaves them to it', async () => {
    const globalTokens = ['--root', '/r', '--root=/s', '--config', 'c.json', '-v', '-D', '-vD', '--verbose', '--debug', '--version', '--help', '-h', '--bogus', '--', 'run', 'nothing'];
    const runTokens = [
      '--rm', '-i', '-t', '-it', '-ti', '-itq', '-qi', '--name', 'n1', '--name=n2', '--name=', '-h', 'box', '-hbox', '--hostname=h',
      '-e', 'A=1', '-eB=2', '--env', '--env=D=4', '-ie', '-ti-', '--env-file', 'f', '--env-file=g', '-w', '/x', '-w/y', '-u', '1:2',
      '--entrypoint', '', '--entrypoint=sh', '-m', '6m', '--cpus', '0.5', '--pids-limit', '-1', '--pull', 'never', '--pull=always',
      '--platform', 'linux/amd64', '-q', '--quiet', '--', '--help', '-x', '--bogus', '-', '=', '--rm=1', '-i=1', '--root', '-D',
      'busybox', 'sh', '-c', 'echo hi',
    ];
    const next = random(20261204);
    const pick = (tokens: string[]) => tokens[Math.floor(next() * tokens.length)]!;
    let quick = 0;
    let left = 0;
    for (let n = 0; n < 3000; n++) {
      const line: string[] = [];
      for (let k = Math.floor(next() * 3); k > 0; k--) line.push(pick(globalTokens));
      line.push(next() < 0.9 ? 'run' : pick(globalTokens));
      for (let k = Math.floor(next() * 7); k > 0; k--) line.push(pick(runTokens));
      if (await assertSameAsCommander(line)) quick++;
      else left++;
    }
    // Both outcomes are common, so the comparison means something.
    assert.ok(quick > 300, `${quick} lines read quickly`);
    assert.ok(left > 300, `${left} lines left to commander`);
  });
});
