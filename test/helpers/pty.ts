/**
 * Runs the CLI on a real pseudo-terminal (python3's pty module), the way a
 * user at a terminal runs it: stdin and stdout are the terminal.
 */
import { spawn } from 'node:child_process';
import { cliPath, repoRoot } from './cli.js';

const script = [
  'import os, pty, sys, time',
  'typed = sys.argv[1].encode()',
  'pid, fd = pty.fork()',
  'if pid == 0:',
  '    os.execvp(sys.argv[2], sys.argv[2:])',
  'out = b""',
  'if typed:',
  '    time.sleep(1.0)',
  '    os.write(fd, typed)',
  'while True:',
  '    try:',
  '        chunk = os.read(fd, 4096)',
  '    except OSError:',
  '        break',
  '    if not chunk:',
  '        break',
  '    out += chunk',
  '_, status = os.waitpid(pid, 0)',
  'sys.stdout.write(out.decode("utf-8", "replace"))',
  'sys.exit(os.waitstatus_to_exitcode(status))',
].join('\n');

/**
 * Runs `minidock ...args` on a terminal with MINIDOCK_ROOT=root, types
 * `typed` (if any) after a second, and resolves with the exit status and
 * everything the terminal showed.
 */
export async function runCliOnPty(args: string[], opts: { root: string; typed?: string }): Promise<{ code: number | null; out: string }> {
  const child = spawn('python3', ['-c', script, opts.typed ?? '', process.execPath, '--', cliPath, ...args], {
    cwd: repoRoot,
    env: { ...process.env, MINIDOCK_ROOT: opts.root },
  });
  let out = '';
  child.stdout.on('data', (c: Buffer) => (out += c.toString()));
  const code = await new Promise<number | null>((res) => child.on('exit', res));
  return { code, out };
}
