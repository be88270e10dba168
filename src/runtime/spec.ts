/**
 * What a container runs, from the image config and the command line, by
 * Docker's rules.
 */
import { MinidockError } from '../errors.js';
import type { ContainerConfig } from '../image/index.js';

export const defaultPath = 'PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin';

/**
 * Combines Entrypoint and Cmd. `entrypoint` is the --entrypoint flag: when
 * given it replaces the image's entrypoint and drops the image's Cmd ("" means
 * no entrypoint at all); `args` after the image name replace Cmd.
 */
export function buildArgs(config: ContainerConfig, entrypoint: string | undefined, args: string[]): string[] {
  let ep = config.Entrypoint ?? [];
  let cmd = config.Cmd ?? [];
  if (entrypoint !== undefined) {
    ep = entrypoint === '' ? [] : [entrypoint];
    cmd = [];
  }
  if (args.length > 0) cmd = args;
  const argv = [...ep, ...cmd];
  if (argv.length === 0) {
    throw new MinidockError('ERR_NO_COMMAND', 'create container: no command specified', {
      hint: 'give a command after the image name, or --entrypoint',
    });
  }
  return argv;
}

/**
 * Parses an --env-file: KEY=VALUE or KEY lines; blank lines and lines
 * starting with # are skipped. Values are taken literally (no quotes or
 * expansion), as in Docker.
 */
export function parseEnvFile(text: string, file: string): string[] {
  const out: string[] = [];
  text.split(/\r?\n/).forEach((line, i) => {
    const trimmed = line.trimStart();
    if (trimmed === '' || trimmed.startsWith('#')) return;
    const key = trimmed.split('=', 1)[0]!;
    if (key === '' || /\s/.test(key)) {
      throw new MinidockError('ERR_BAD_ENV', `read env file ${JSON.stringify(file)}: line ${i + 1}: variable name ${JSON.stringify(key)} is not valid`);
    }
    out.push(trimmed);
  });
  return out;
}

export interface EnvInputs {
  /** Env from the image config. */
  image: string[];
  /** --env-file entries, then -e entries, in command-line order. */
  overrides: string[];
  /** The host's environment, for `-e KEY` without a value. */
  host: Record<string, string | undefined>;
  hostname: string;
  home: string;
  tty: boolean;
}

/**
 * Builds the container's environment: the image's Env, then overrides by
 * key ("K=V" sets, "K" copies the host's value or is dropped when the host has
 * none), then Docker's defaults for PATH, HOSTNAME, HOME and (with a tty) TERM.
 */
export function buildEnv(inputs: EnvInputs): string[] {
  const env = new Map<string, string>();
  const set = (entry: string) => {
    const eq = entry.indexOf('=');
    if (eq < 0) {
      const v = inputs.host[entry];
      if (v !== undefined) env.set(entry, v);
      return;
    }
    env.set(entry.slice(0, eq), entry.slice(eq + 1));
  };
  inputs.image.forEach(set);
  inputs.overrides.forEach(set);
  if (!env.has('PATH')) env.set('PATH', defaultPath.slice('PATH='.length));
  if (!env.has('HOSTNAME')) env.set('HOSTNAME', inputs.hostname);
  if (!env.has('HOME')) env.set('HOME', inputs.home);
  if (inputs.tty && !env.has('TERM')) env.set('TERM', 'xterm');
  return [...env].map(([k, v]) => `${k}=${v}`);
}
