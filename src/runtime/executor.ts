/**
 * The bridge to the native executor, native/build/minidock-exec.
 *
 * TypeScript decides everything about a container and hands it to the
 * helper as plain arguments, but for the environment, which comes on fd 4
 * (any local user can read a command line); the helper clones into new namespaces, joins
 * the cgroups, builds the rootfs, drops privileges and execs. It reports
 * back in JSON lines on fd 3, which this module turns into log lines, an
 * onStart callback, errors, and the exit status.
 *
 * Limitations:
 * - SIGUSR1 is not forwarded: Node keeps it for its inspector.
 * - The container pid handed to onStart is a host pid; killing it after the
 *   helper has reaped it could, in theory, hit a reused pid.
 * - The helper dies with the thread that spawned it (PR_SET_PDEATHSIG), so
 *   execute() called from a worker thread ties the container to that worker.
 */
import { spawn } from 'node:child_process';
import { constants as fsConstants } from 'node:fs';
import { access } from 'node:fs/promises';
import { constants as osConstants } from 'node:os';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { getSystemErrorMap } from 'node:util';
import type { Readable, Writable } from 'node:stream';

import { ContainerExecError, RuntimeSetupError, messageOf } from '../errors.js';
import { silentLogger, type Logger } from '../log.js';

/** Everything the native executor needs to start one container. */
export interface ExecSpec {
  /**
   * The overlay mount: `data` is the mount data string
   * ("lowerdir=a:b,upperdir=u,workdir=w"), whose relative paths resolve
   * against `mountCwd`; `rootfs` is an existing empty directory.
   */
  overlay: { data: string; mountCwd: string; rootfs: string };
  hostname: string;
  /** The command; args[0] is looked up in the container's PATH. */
  args: string[];
  /** "KEY=value" entries: the container's whole environment. */
  env: string[];
  /** Working directory inside the container, created (0755) when missing. */
  cwd: string;
  uid: number;
  gid: number;
  /** Supplementary groups; empty means none. */
  groups: number[];
  /** Allocate a pseudo-terminal and relay it to the host's stdio. */
  tty: boolean;
  /** Keep stdin open (otherwise the container's fd 0 is /dev/null). */
  stdin: boolean;
  /** cgroup.procs files (v1 or v2) to put the container in before it runs. */
  cgroupProcs: string[];
}

export interface ExecOptions {
  logger?: Logger;
  /** Called with the container's host pid once it is in its cgroups. */
  onStart?: (pid: number) => void;
  /**
   * Aborting kills the container with SIGKILL. If it had started, the
   * promise then resolves with 137 like any kill; before that it rejects
   * with the signal's reason.
   */
  signal?: AbortSignal;
}

/** The log-fd records the helper writes, one JSON object per line. */
interface ExecutorRecord {
  level?: 'debug' | 'warn' | 'fatal';
  msg?: string;
  step?: string;
  pid?: number;
  exit?: number;
  exec_errno?: number;
  path?: string;
}

const LOG_FD = 3;
const ENV_FD = 4;

/** The most one "KEY=value" string may take in execve(2): MAX_ARG_STRLEN, with its NUL. */
const maxEnvEntryBytes = 32 * 4096 - 1;

/** Returns the path of the native executor binary in this checkout or package. */
export function executorPath(): string {
  // The compiled file is dist/src/runtime/executor.js: the root is three levels up.
  return fileURLToPath(new URL('../../../native/build/minidock-exec', import.meta.url));
}

/**
 * Returns the helper's command line for spec (without the program itself).
 * The helper reads the environment, executorEnv(spec), from fd 4.
 * Throws RuntimeSetupError for a spec the helper or execve would refuse.
 */
export function executorArgs(spec: ExecSpec): string[] {
  const bad = (what: string) => new RuntimeSetupError(`prepare container: ${what}`, 'args');

  if (spec.args.length === 0) throw bad('empty command');
  const ids: [string, number][] = [['uid', spec.uid], ['gid', spec.gid]];
  for (const g of spec.groups) ids.push(['group', g]);
  for (const [name, id] of ids) {
    // (uid_t)-1 means "unchanged" to the kernel, so it is refused too.
    if (!Number.isInteger(id) || id < 0 || id >= 2 ** 32 - 1) throw bad(`invalid ${name} ${id}`);
  }
  for (const entry of spec.env) {
    const name = JSON.stringify(entry.split('=', 1)[0]!.slice(0, 64));
    if (entry.indexOf('=') < 1) throw bad(`invalid environment entry ${JSON.stringify(entry.slice(0, 64))}`);
    if (entry.includes('\0')) throw bad(`environment variable ${name} holds a NUL byte`);
    const bytes = Buffer.byteLength(entry);
    if (bytes > maxEnvEntryBytes) {
      throw bad(`environment variable ${name} takes ${bytes} bytes; the kernel passes at most ${maxEnvEntryBytes} for one (name=value)`);
    }
  }

  const args = [
    '--log-fd', String(LOG_FD),
    '--mount-cwd', spec.overlay.mountCwd,
    '--overlay', spec.overlay.data,
    '--rootfs', spec.overlay.rootfs,
    '--hostname', spec.hostname,
    '--cwd', spec.cwd,
    '--uid', String(spec.uid),
    '--gid', String(spec.gid),
  ];
  if (spec.groups.length > 0) args.push('--groups', spec.groups.join(','));
  args.push('--env-fd', String(ENV_FD));
  for (const file of spec.cgroupProcs) args.push('--cgroup-procs', file);
  if (spec.tty) args.push('--tty');
  if (spec.stdin) args.push('--stdin');
  args.push('--', ...spec.args);
  return args;
}

/** What the helper reads from fd 4: each "KEY=value" entry ended by a NUL. */
export function executorEnv(spec: ExecSpec): Buffer {
  return Buffer.from(spec.env.map((e) => `${e}\0`).join(''));
}

// libuv's table lacks some errnos an exec can fail with; these read as strerror(3).
const EXEC_ERRNO_TEXT: Record<string, string> = {
  ENOEXEC: 'exec format error',
  ETXTBSY: 'text file busy',
  E2BIG: 'argument list too long',
  ELOOP: 'too many levels of symbolic links',
  ENAMETOOLONG: 'file name too long',
  ENOTDIR: 'not a directory',
  EISDIR: 'is a directory',
  EPERM: 'operation not permitted',
};

function errnoText(errno: number): string {
  const known = getSystemErrorMap().get(-errno);
  if (known) return known[1];
  const name = Object.entries(osConstants.errno).find(([, n]) => n === errno)?.[0];
  return (name && EXEC_ERRNO_TEXT[name]) ?? `errno ${errno}`;
}

/** Builds the Docker-like error for a failed exec of path. */
export function execError(errno: number, path: string): ContainerExecError {
  const quoted = JSON.stringify(path);

  if (errno === osConstants.errno.ENOENT) {
    const cause = path.includes('/') ? 'no such file or directory' : 'executable file not found in $PATH';
    return new ContainerExecError(`exec ${quoted}: ${cause}`, 127, errno);
  }
  return new ContainerExecError(`exec ${quoted}: ${errnoText(errno)}`, 126, errno);
}

/** The signals minidock forwards to the container, as Docker's sig-proxy does. */
const forwardedSignals: NodeJS.Signals[] = ['SIGINT', 'SIGTERM', 'SIGHUP', 'SIGQUIT', 'SIGUSR2'];

/**
 * Keeps Node alive through the forwarded signals while the helper runs,
 * sending each to the helper, which passes it to the container. The helper
 * forwards only what its parent sends it: a signal to the whole process
 * group (Ctrl-C at a terminal) reaches both, and must reach the container
 * once. Returns the function that removes the handlers.
 */
function installSignalHandlers(forward: (signal: NodeJS.Signals) => void): () => void {
  const handlers = forwardedSignals.map((sig) => [sig, () => forward(sig)] as const);
  for (const [sig, handler] of handlers) process.on(sig, handler);
  return () => {
    for (const [sig, handler] of handlers) process.off(sig, handler);
  };
}

/**
 * Runs the container described by spec and resolves with its exit status
 * (128+n for death by signal n). Stdio is the caller's: pipes and sockets
 * pass to the container as they are, anything else through the helper's
 * relay (native/stdio.c).
 *
 * Rejects with RuntimeSetupError when the helper is missing or a set-up
 * step fails (its `step` names which), with ContainerExecError when the
 * command cannot be executed (exitCode 126 or 127), and with the abort
 * reason when aborted before the container started.
 */
export async function execute(spec: ExecSpec, options: ExecOptions = {}): Promise<number> {
  const logger = options.logger ?? silentLogger;
  const bin = executorPath();
  const args = executorArgs(spec);

  try {
    await access(bin, fsConstants.X_OK);
  } catch (err) {
    throw new RuntimeSetupError(`locate executor \`${bin}\`: ${messageOf(err)}`, 'locate', {
      hint: 'run `npm run build`',
      cause: err,
    });
  }
  options.signal?.throwIfAborted();

  // Not the whole command line: environment values may hold secrets.
  logger.debug(`executor: run ${JSON.stringify(spec.args)} as ${spec.uid}:${spec.gid}`);
  // The helper dies with this process; --parent-pid lets it notice that we
  // died before it could ask for that.
  const child = spawn(bin, ['--parent-pid', String(process.pid), ...args], {
    stdio: ['inherit', 'inherit', 'inherit', 'pipe', 'pipe'],
  });
  const envStream = child.stdio[ENV_FD] as Writable | null;
  // A helper that dies early closes its end; its own report says why.
  envStream?.on('error', () => {});
  envStream?.end(executorEnv(spec));

  let containerPid: number | undefined;
  let exitStatus: number | undefined;
  let failure: Error | undefined;
  const fail = (err: Error) => {
    failure ??= err;
  };

  const helperRunning = () => child.exitCode === null && child.signalCode === null;
  const kill = () => {
    try {
      // Before the pid record the child is still waiting for us; killing the
      // helper takes it down too (it has a parent-death signal).
      if (containerPid !== undefined && exitStatus === undefined) process.kill(containerPid, 'SIGKILL');
      else if (helperRunning()) child.kill('SIGKILL');
    } catch (err) {
      logger.warn(`kill container: ${messageOf(err)}`);
    }
  };
  const onAbort = () => {
    if (containerPid === undefined) fail(options.signal?.reason ?? new Error('aborted'));
    kill();
  };
  options.signal?.addEventListener('abort', onAbort, { once: true });
  const removeHandlers = installSignalHandlers((sig) => {
    if (helperRunning()) child.kill(sig);
  });

  const onRecord = (rec: ExecutorRecord) => {
    if (typeof rec.pid === 'number') {
      containerPid = rec.pid;
      logger.debug(`container pid ${rec.pid}`);
      try {
        options.onStart?.(rec.pid);
      } catch (err) {
        fail(err instanceof Error ? err : new Error(String(err)));
        kill();
      }
    } else if (typeof rec.exit === 'number') {
      exitStatus = rec.exit;
    } else if (typeof rec.exec_errno === 'number') {
      fail(execError(rec.exec_errno, rec.path ?? spec.args[0]));
    } else if (rec.level === 'fatal') {
      fail(new RuntimeSetupError(rec.msg ?? 'set up container: unknown error', rec.step));
    } else if (rec.level === 'warn') {
      logger.warn(`executor: ${rec.msg}`);
    } else {
      logger.debug(`executor: ${rec.msg}`);
    }
  };

  const lines = createInterface({ input: child.stdio[LOG_FD] as Readable, crlfDelay: Infinity });
  lines.on('line', (line) => {
    let rec: ExecutorRecord;
    try {
      rec = JSON.parse(line) as ExecutorRecord;
    } catch {
      logger.warn(`executor: unparsable log line ${JSON.stringify(line)}`);
      return;
    }
    onRecord(rec);
  });

  try {
    const [code, sig] = await new Promise<[number | null, NodeJS.Signals | null]>((resolve, reject) => {
      child.once('error', reject);
      child.once('close', (c, s) => resolve([c, s]));
    });
    if (failure) throw failure;
    if (exitStatus !== undefined) return exitStatus;
    const how = sig ? `killed by ${sig}` : `exited with status ${code}`;
    throw new RuntimeSetupError(`run executor \`${bin}\`: ${how} without reporting a status`, 'exec');
  } catch (err) {
    if (err === failure) throw err;
    if (err instanceof RuntimeSetupError) throw err;
    throw new RuntimeSetupError(`run executor \`${bin}\`: ${messageOf(err)}`, 'spawn', { cause: err });
  } finally {
    removeHandlers();
    options.signal?.removeEventListener('abort', onAbort);
    lines.close();
  }
}
