/**
 * The minidock command line. Results go to stdout; every diagnostic goes to
 * stderr as one line "minidock: <message>" (plus "hint: …"), and minidock's
 * own failures exit 125, as Docker's do.
 */
import type { Command } from 'commander';
import { MinidockError } from '../errors.js';
import { globalOptionSpecs, quickRunLine, runOptionSpecs, type OptionSpec } from './command-line.js';
import { makeContext, type Context, type GlobalOptions } from './context.js';
import type { RunFlags } from './commands/run.js';

const collect = (value: string, previous: string[]) => [...previous, value];

/** Exit statuses of minidock's own failures (Docker's conventions). */
export const exitStatus = { ownError: 125, notExecutable: 126, notFound: 127 } as const;

type Commander = typeof import('commander');

/** What `run` does once its command line is read, by commander or by quickRunLine. */
export type RunAction = (globals: GlobalOptions, image: string, args: string[], flags: RunFlags) => Promise<number>;

const runAction: RunAction = async (globals, image, args, flags) => {
  const { runCommand } = await import('./commands/run.js');
  return runCommand(makeContext(globals), image, args, flags);
};

function commanderOption(commander: Commander, spec: OptionSpec) {
  const option = new commander.Option(spec.flags, spec.description);
  if (spec.repeatable) option.argParser(collect).default([]);
  if (spec.default !== undefined) option.default(spec.default);
  return option;
}

/** The whole command line, in commander. `run` is the action run calls (a test may pass its own). */
export function buildProgram(commander: Commander, exit: (code: number) => void, run = runAction): Command {
  const program = new commander.Command('minidock');
  let ctx: Context | undefined;
  const context = () => (ctx ??= makeContext(program.opts<GlobalOptions>()));

  program
    .description('pull OCI/Docker images, run them in namespaces under cgroup limits, inspect them')
    .version(process.env.npm_package_version ?? '0.1.0', '--version');
  for (const spec of globalOptionSpecs) program.addOption(commanderOption(commander, spec));
  program
    .enablePositionalOptions()
    .showHelpAfterError(false)
    .exitOverride()
    .configureOutput({
      writeErr: (s) => process.stderr.write(s),
      outputError: (s, write) => write(`minidock: ${s.replace(/^error: /, '')}`),
    });

  program
    .command('pull')
    .description('download an image from a registry')
    .argument('<image>', 'image reference, e.g. busybox or 127.0.0.1:5000/library/debian:bookworm')
    .option('-q, --quiet', 'print no progress')
    .option('--platform <os/arch[/variant]>', 'platform to pick from a multi-platform image')
    .action(async (image: string, flags) => {
      const { pullCommand } = await import('./commands/pull.js');
      await pullCommand(context(), image, flags);
    });

  program
    .command('login')
    .description('log in to a registry, keeping the credentials in Docker\'s config.json')
    .argument('<server>', 'registry host, e.g. 127.0.0.1:5000')
    .option('-u, --username <user>', 'user name')
    .option('--password-stdin', 'read the password from stdin')
    .action(async (server: string, flags) => {
      const { loginCommand } = await import('./commands/login.js');
      await loginCommand(context(), server, flags);
    });

  program
    .command('logout')
    .description('remove the credentials kept for a registry')
    .argument('<server>', 'registry host, e.g. 127.0.0.1:5000')
    .action(async (server: string) => {
      const { logoutCommand } = await import('./commands/login.js');
      await logoutCommand(context(), server);
    });

  const runCmd = program
    .command('run')
    .description('run a command in a new container')
    .argument('<image>', 'image reference or id')
    .argument('[command...]', 'command and arguments (default: the image\'s entrypoint and cmd)')
    .passThroughOptions();
  for (const spec of runOptionSpecs) runCmd.addOption(commanderOption(commander, spec));
  runCmd.action(async (image: string, args: string[], flags: RunFlags) => {
    exit(await run(program.opts<GlobalOptions>(), image, args, flags));
  });

  program
    .command('images')
    .description('list images in the store')
    .option('-q, --quiet', 'print only image ids')
    .option('--no-trunc', 'do not shorten ids')
    .action(async (flags) => {
      const { imagesCommand } = await import('./commands/images.js');
      await imagesCommand(context(), { quiet: flags.quiet, noTrunc: flags.trunc === false });
    });

  program
    .command('rmi')
    .description('remove images, and the layers no other image uses')
    .argument('<image...>')
    .option('-f, --force', 'remove even when containers use the image')
    .action(async (images: string[], flags) => {
      const { rmiCommand } = await import('./commands/images.js');
      exit(await rmiCommand(context(), images, flags));
    });

  program
    .command('ps')
    .description('list containers')
    .option('-a, --all', 'show all containers, not only running ones')
    .option('-q, --quiet', 'print only container ids')
    .option('--no-trunc', 'do not shorten ids and commands')
    .action(async (flags) => {
      const { psCommand } = await import('./commands/containers.js');
      await psCommand(context(), { all: flags.all, quiet: flags.quiet, noTrunc: flags.trunc === false });
    });

  program
    .command('rm')
    .description('remove containers')
    .argument('<container...>')
    .option('-f, --force', 'kill and remove a running container')
    .action(async (names: string[], flags) => {
      const { rmCommand } = await import('./commands/containers.js');
      exit(await rmCommand(context(), names, flags));
    });

  return program;
}

/** Reports err on stderr and returns the exit status for it. */
function report(err: unknown, debug: boolean): number {
  if (err instanceof MinidockError) {
    process.stderr.write(`minidock: ${err.message}\n`);
    if (err.hint) process.stderr.write(`hint: ${err.hint}\n`);
    if (debug && err.stack) process.stderr.write(`${err.stack}\n`);
    const code = (err as { exitCode?: number }).exitCode;
    return typeof code === 'number' ? code : exitStatus.ownError;
  }
  process.stderr.write(`minidock: [internal error] ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
  return exitStatus.ownError;
}

/** Runs the CLI with argv (process.argv shape) and exits with the right status. */
export async function main(argv: string[]): Promise<void> {
  let status: number | undefined;
  // Should the event loop ever drain before a command settles, that is
  // minidock's failure, not success.
  process.exitCode = exitStatus.ownError;
  let commander: Commander | undefined;
  try {
    // The most frequent command is read without loading commander.
    const quick = quickRunLine(argv.slice(2));
    if (quick !== undefined) {
      status = await runAction(quick.globals, quick.image, quick.args, quick.flags as unknown as RunFlags);
    } else {
      commander = await import('commander');
      const program = buildProgram(commander, (code) => {
        status = code;
      });
      await program.parseAsync(argv);
    }
  } catch (err) {
    if (commander !== undefined && err instanceof commander.CommanderError) {
      const ok = err.code === 'commander.helpDisplayed' || err.code === 'commander.version' || err.code === 'commander.help';
      status = ok ? 0 : exitStatus.ownError;
    } else {
      status = report(err, argv.includes('--debug') || argv.includes('-D'));
    }
  }
  // Exit now: a pooled connection or a timer must not keep a finished
  // command alive. stdout and stderr writes are synchronous on Linux.
  process.exit(status ?? 0);
}
