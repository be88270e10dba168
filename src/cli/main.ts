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

  program
    .command('save')
    .description('write images to a tar archive (Docker\'s format by default), or an OCI layout')
    .argument('<image...>')
    .option('-o, --output <file>', 'write to a file (a directory for oci-dir) instead of stdout')
    .addOption(new commander.Option('--format <format>', 'docker-archive, oci-archive or oci-dir').default('docker-archive'))
    .action(async (images: string[], flags) => {
      const { saveCommand } = await import('./commands/archive.js');
      await saveCommand(context(), images, flags);
    });

  program
    .command('load')
    .description('load images from a Docker or OCI archive (or an OCI layout directory)')
    .option('-i, --input <file>', 'read from a file or directory instead of stdin')
    .option('-q, --quiet', 'print no progress')
    .action(async (flags) => {
      const { loadCommand } = await import('./commands/archive.js');
      await loadCommand(context(), flags);
    });

  const image = program.command('image').description('manage images');
  image
    .command('prune')
    .description('remove unused images')
    .option('-a, --all', 'remove all images no container uses, not only dangling ones')
    .option('-f, --force', 'do not prompt for confirmation')
    .action(async (flags) => {
      const { imagePruneCommand } = await import('./commands/system.js');
      await imagePruneCommand(context(), flags);
    });

  const container = program.command('container').description('manage containers');
  container
    .command('prune')
    .description('remove all stopped containers')
    .option('-f, --force', 'do not prompt for confirmation')
    .action(async (flags) => {
      const { containerPruneCommand } = await import('./commands/system.js');
      await containerPruneCommand(context(), flags);
    });

  const system = program.command('system').description('manage the store');
  system
    .command('prune')
    .description('remove stopped containers, dangling images and unreferenced content')
    .option('-a, --all', 'remove all images no container uses, not only dangling ones')
    .option('-f, --force', 'do not prompt for confirmation')
    .action(async (flags) => {
      const { systemPruneCommand } = await import('./commands/system.js');
      await systemPruneCommand(context(), flags);
    });
  system
    .command('df')
    .description('show how much space images, containers and layers take')
    .option('-v, --verbose', 'show each image, container and layer')
    .action(async (flags) => {
      const { systemDfCommand } = await import('./commands/system.js');
      await systemDfCommand(context(), flags);
    });
  system
    .command('check')
    .description('verify every blob\'s digest and every layer\'s completeness')
    .option('--repair', 'remove what is wrong, so that the next pull fetches it again')
    .action(async (flags) => {
      const { systemCheckCommand } = await import('./commands/system.js');
      exit(await systemCheckCommand(context(), flags));
    });

  program
    .command('inspect')
    .description('show an image\'s manifest, config and layers, or a container\'s state and spec')
    .argument('<name>', 'image or container (or, with --remote, an image reference)')
    .option('--format <format>', 'json for the documented schema (docs/inspect.md)')
    .option('--type <type>', 'look for an image or a container only')
    .option('--efficiency', 'measure wasted space and the efficiency score, as dive does')
    .option('--fail-under <score>', 'exit 1 when the efficiency score is below this (0 to 1)')
    .option('--raw <what>', 'print the stored manifest or config bytes exactly (manifest|config)')
    .option('--remote', 'read the image from its registry, storing nothing')
    .option('--platform <os/arch[/variant]>', 'with --remote: the platform to pick from an index')
    .action(async (name: string, flags) => {
      const { inspectCommand } = await import('./commands/inspect.js');
      exit(await inspectCommand(context(), name, flags));
    });

  program
    .command('history')
    .description('show the history of an image, one row per entry, newest first')
    .argument('<image>')
    .option('--format <format>', 'json for the documented schema (docs/inspect.md)')
    .option('--no-trunc', 'do not shorten ids and CREATED BY')
    .option('--no-human', 'print times as RFC 3339 and sizes in bytes')
    .action(async (image: string, flags) => {
      const { historyCommand } = await import('./commands/inspect.js');
      await historyCommand(context(), image, { format: flags.format, noTrunc: flags.trunc === false, human: flags.human });
    });

  program
    .command('layers')
    .description('list what each layer adds (A), changes (C) and deletes (D)')
    .argument('<image>', 'image (or, with --remote, an image reference)')
    .argument('[layer]', 'one layer: its number (1 is the bottom layer), digest or diffID')
    .option('--format <format>', 'json for the documented schema (docs/inspect.md)')
    .option('--tree', 'show the changes as a tree')
    .option('--filter <path>', 'only paths at or below this one')
    .option('--remote', 'stream the layer from its registry and list its entries, storing nothing')
    .option('--platform <os/arch[/variant]>', 'with --remote: the platform to pick from an index')
    .action(async (image: string, layer: string | undefined, flags) => {
      const { layersCommand } = await import('./commands/layers.js');
      await layersCommand(context(), image, layer, flags);
    });

  program
    .command('diff')
    .description('show what a container changed against its image, or what changes from one image to another')
    .argument('<name>', 'container, or image')
    .argument('[other]', 'image or container to compare the first with')
    .option('--format <format>', 'json for the documented schema (docs/inspect.md)')
    .action(async (name: string, other: string | undefined, flags) => {
      const { diffCommand } = await import('./commands/layers.js');
      await diffCommand(context(), name, other, flags);
    });

  program
    .command('ls')
    .description('list a directory of an image\'s (or a container\'s) merged filesystem')
    .argument('<image[:path]>', 'e.g. busybox:/etc')
    .option('--format <format>', 'json for the documented schema (docs/inspect.md)')
    .action(async (arg: string, flags) => {
      const { lsCommand } = await import('./commands/files.js');
      await lsCommand(context(), arg, flags);
    });

  program
    .command('cat')
    .description('print a file of an image\'s (or a container\'s) merged filesystem')
    .argument('<image:path>', 'e.g. busybox:/etc/passwd')
    .action(async (arg: string) => {
      const { catCommand } = await import('./commands/files.js');
      await catCommand(context(), arg);
    });

  program
    .command('export')
    .description('write the merged filesystem of an image or container as one tar')
    .argument('<name>', 'image or container')
    .option('-o, --output <file>', 'write to this file instead of stdout')
    .action(async (name: string, flags) => {
      const { exportCommand } = await import('./commands/files.js');
      await exportCommand(context(), name, flags);
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
  // A system call refused (a store minidock may not write, a full disk):
  // one line, as for minidock's own errors; the stack only with --debug.
  const sys = err as NodeJS.ErrnoException;
  if (err instanceof Error && typeof sys.syscall === 'string' && typeof sys.code === 'string') {
    process.stderr.write(`minidock: ${err.message}\n`);
    if ((sys.code === 'EACCES' || sys.code === 'EPERM') && process.getuid?.() !== 0) {
      process.stderr.write('hint: minidock needs root (namespaces, mounts, cgroups and file owners)\n');
    }
    if (debug && err.stack) process.stderr.write(`${err.stack}\n`);
    return exitStatus.ownError;
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
  // A reader that went away (`minidock layers IMAGE | head`) ends the
  // command as SIGPIPE would, without a stack trace; any other failure to
  // write the results (a full disk) is minidock's error.
  let outputError: NodeJS.ErrnoException | undefined;
  process.stdout.on('error', (err: NodeJS.ErrnoException) => {
    if (err.code === 'EPIPE') process.exit(128 + 13);
    outputError ??= err;
  });
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
  // A failed write to stdout is reported on the next tick: let it arrive.
  await new Promise((resolve) => setImmediate(resolve));
  if (outputError !== undefined && !status) {
    process.stderr.write(`minidock: write results to stdout: ${outputError.message}\n`);
    status = exitStatus.ownError;
  }
  // Exit now: a pooled connection or a timer must not keep a finished
  // command alive. stdout and stderr writes are synchronous on Linux.
  process.exit(status ?? 0);
}
