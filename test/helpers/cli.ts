/**
 * Runs the built minidock CLI as a child process, the way a user would,
 * against a store directory of the test's own.
 */
import { spawn } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

/** The checkout's root: this file runs from dist/test/helpers/. */
export const repoRoot = fileURLToPath(new URL('../../../', import.meta.url));

/** The CLI entry point, bin/minidock.js. */
export const cliPath = join(repoRoot, 'bin', 'minidock.js');

export interface RunCliOptions {
  /** Variables added to (or, when undefined, removed from) the inherited environment. */
  env?: Record<string, string | undefined>;
  /** Written to the CLI's stdin, which is then closed. Without it stdin is empty. */
  input?: string | Buffer;
  /** The store root (MINIDOCK_ROOT); defaults to one temp dir per test process. */
  root?: string;
  /** Kills the CLI (SIGKILL) when aborted. */
  signal?: AbortSignal;
  /** Runs bin/minidock.js itself, through its #! line, as an installed minidock starts. */
  direct?: boolean;
}

export interface CliResult {
  /** Exit status, or null when a signal ended the process. */
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

let defaultRoot: string | undefined;

/**
 * Returns a fresh, empty directory for use as a store root. The caller
 * removes it (a store may hold mounts, so nothing removes it blindly).
 */
export function makeTestRoot(): string {
  return mkdtempSync(join(tmpdir(), 'minidock-root-'));
}

/**
 * Runs `node bin/minidock.js ...args` from the repository root with
 * MINIDOCK_ROOT set to opts.root, and resolves with its exit status and
 * output once it exits. Never rejects for a non-zero exit; rejects only
 * when node cannot be spawned.
 */
export function runCli(args: string[], opts: RunCliOptions = {}): Promise<CliResult> {
  const root = opts.root ?? (defaultRoot ??= makeTestRoot());
  const env: NodeJS.ProcessEnv = { ...process.env };
  for (const [k, v] of Object.entries(opts.env ?? {})) {
    if (v === undefined) delete env[k];
    else env[k] = v;
  }
  env.MINIDOCK_ROOT = root;

  return new Promise((resolveRun, reject) => {
    const [command, ...argv] = opts.direct ? [cliPath, ...args] : [process.execPath, '--', cliPath, ...args];
    const child = spawn(command!, argv, {
      cwd: repoRoot,
      env,
      stdio: ['pipe', 'pipe', 'pipe'],
      ...(opts.signal === undefined ? {} : { signal: opts.signal, killSignal: 'SIGKILL' as const }),
    });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    child.stdout.on('data', (c: Buffer) => out.push(c));
    child.stderr.on('data', (c: Buffer) => err.push(c));
    // A CLI that exits before reading all of stdin closes the pipe: not our error.
    child.stdin.on('error', () => {});
    child.stdin.end(opts.input ?? '');

    let spawned = false;
    child.once('spawn', () => {
      spawned = true;
    });
    child.once('error', (e) => {
      if (!spawned) reject(e);
    });
    child.once('close', (code, signal) => {
      resolveRun({
        code,
        signal,
        stdout: Buffer.concat(out).toString('utf8'),
        stderr: Buffer.concat(err).toString('utf8'),
      });
    });
  });
}
