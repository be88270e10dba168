/**
 * The options of `run` and minidock's global options, as data. main.ts
 * builds commander's options from these tables, and `quickRunLine` reads a
 * plain `minidock [global options] run [options] IMAGE [COMMAND…]` with
 * them alone, so that the most frequent command starts without loading
 * commander (about 10 ms of a run's start-up).
 *
 * quickRunLine follows commander's own option grammar (see parseOptions in
 * commander's lib/command.js): `--name value`, `--name=value`, `-n value`,
 * `-nvalue`, grouped short flags (`-it`), a value taken from the next
 * argument whatever it looks like, `--` before the image, and everything
 * after the image passed through as the command. For anything else (help,
 * --version, an unknown or malformed option, no image, another command) it
 * returns undefined and commander reads the line, so errors and help are
 * the same whichever path a line takes. test/cli/command-line.test.ts
 * checks the two against each other.
 */

/** One option: commander's flags string ("-e, --env <KEY[=VALUE]>") and help text. */
export interface OptionSpec {
  flags: string;
  description: string;
  /** The option may be given again, its values collected in order (default []). */
  repeatable?: boolean;
  default?: string;
}

export const globalOptionSpecs: OptionSpec[] = [
  { flags: '--root <dir>', description: 'store root (default: MINIDOCK_ROOT, the checkout\'s store/, or /var/lib/minidock)' },
  { flags: '--config <file>', description: 'configuration file (default: /etc/minidock/config.json)' },
  { flags: '-v, --verbose', description: 'log each step' },
  { flags: '-D, --debug', description: 'log HTTP requests and other detail; show stack traces' },
];

export const runOptionSpecs: OptionSpec[] = [
  { flags: '--rm', description: 'remove the container when it exits' },
  { flags: '-i, --interactive', description: 'keep stdin open' },
  { flags: '-t, --tty', description: 'allocate a pseudo-terminal' },
  { flags: '--name <name>', description: 'name the container' },
  { flags: '-h, --hostname <name>', description: 'container host name (default: its short id)' },
  { flags: '-e, --env <KEY[=VALUE]>', description: 'set an environment variable (repeatable)', repeatable: true },
  { flags: '--env-file <file>', description: 'read environment variables from a file (repeatable)', repeatable: true },
  { flags: '-w, --workdir <dir>', description: 'working directory inside the container' },
  { flags: '-u, --user <user[:group]>', description: 'user name or uid, optionally with group or gid' },
  { flags: '--entrypoint <cmd>', description: 'override the image\'s entrypoint ("" for none)' },
  { flags: '-m, --memory <bytes>', description: 'memory limit, e.g. 256m or 1g' },
  { flags: '--cpus <n>', description: 'number of CPUs, e.g. 0.5' },
  { flags: '--pids-limit <n>', description: 'maximum number of processes (-1 for no limit)' },
  { flags: '--pull <policy>', description: 'pull the image: missing, always or never', default: 'missing' },
  { flags: '--platform <os/arch[/variant]>', description: 'platform to pull when the image is missing' },
  { flags: '-q, --quiet', description: 'print no pull progress' },
];

/** Option values keyed as commander keys them (camel case of the long name). */
export type OptionValues = Record<string, string | string[] | boolean>;

/** A `run` command line, read. */
export interface QuickRunLine {
  globals: OptionValues;
  image: string;
  args: string[];
  flags: OptionValues;
}

interface Known {
  spec: OptionSpec;
  short?: string;
  long: string;
  key: string;
  takesValue: boolean;
}

function compile(specs: OptionSpec[]): Known[] {
  return specs.map((spec) => {
    const m = /^(?:(-\w), )?(--[\w-]+)( <.+>)?$/.exec(spec.flags);
    if (!m) throw new Error(`[internal error] option flags ${JSON.stringify(spec.flags)}`);
    const key = m[2]!.slice(2).replace(/-(\w)/g, (_, c: string) => c.toUpperCase());
    return { spec, short: m[1], long: m[2]!, key, takesValue: m[3] !== undefined };
  });
}

const globalOptions = compile(globalOptionSpecs);
const runOptions = compile(runOptionSpecs);

function defaults(known: Known[]): OptionValues {
  const values: OptionValues = {};
  for (const k of known) {
    if (k.spec.repeatable) values[k.key] = [];
    else if (k.spec.default !== undefined) values[k.key] = k.spec.default;
  }
  return values;
}

function set(values: OptionValues, k: Known, value: string | true): void {
  values[k.key] = k.spec.repeatable ? [...(values[k.key] as string[]), value as string] : value;
}

/**
 * Reads options from args[i] on into values, as commander would. Returns
 * the index of the first operand (args.length when there is none), or
 * undefined at anything this reader leaves to commander.
 */
function readOptions(args: string[], i: number, known: Known[], values: OptionValues): number | undefined {
  const find = (flag: string) => known.find((k) => k.short === flag || k.long === flag);
  let group: string | undefined; // the rest of a short group, as "-xyz"
  while (group !== undefined || i < args.length) {
    const inGroup = group !== undefined;
    const arg = group ?? args[i++]!;
    group = undefined;
    // An operand, or "--" before one (a group ending in "-" is left alone).
    if (arg === '--' || arg.length < 2 || !arg.startsWith('-')) return inGroup ? undefined : i - 1;
    const exact = find(arg);
    if (exact) {
      if (!exact.takesValue) set(values, exact, true);
      else if (i < args.length) set(values, exact, args[i++]!);
      else return undefined;
      continue;
    }
    const short = arg[1] !== '-' ? find(arg.slice(0, 2)) : undefined;
    if (short) {
      if (short.takesValue) set(values, short, arg.slice(2));
      else {
        set(values, short, true);
        group = `-${arg.slice(2)}`;
      }
      continue;
    }
    const eq = arg.indexOf('=');
    const long = arg.startsWith('--') && eq > 2 ? find(arg.slice(0, eq)) : undefined;
    if (long?.takesValue) {
      set(values, long, arg.slice(eq + 1));
      continue;
    }
    return undefined;
  }
  return i;
}

/**
 * Reads args (argv without node and the script) when they are a `run`
 * command line this reader fully understands; otherwise returns undefined.
 */
export function quickRunLine(args: string[]): QuickRunLine | undefined {
  const globals: OptionValues = {};
  const command = readOptions(args, 0, globalOptions, globals);
  if (command === undefined || args[command] !== 'run') return undefined;

  const flags = defaults(runOptions);
  let image = readOptions(args, command + 1, runOptions, flags);
  if (image === undefined) return undefined;
  if (args[image] === '--') image++;
  if (image >= args.length) return undefined;
  return { globals, image: args[image]!, args: args.slice(image + 1), flags };
}
