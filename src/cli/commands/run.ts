/**
 * `minidock run [OPTIONS] IMAGE [COMMAND] [ARG...]`
 */
import { availableParallelism } from 'node:os';
import { MinidockError } from '../../errors.js';
import { formatPlatform } from '../../image/index.js';
import { parseReference } from '../../reference.js';
import { parseBytes } from '../../runtime/cgroups.js';
import { runContainer } from '../../runtime/run.js';
import { lookupImage, readImageConfig, type ContainerLimits } from '../../store/index.js';
import type { Context } from '../context.js';
import { platformFlag, pullWithProgress } from './pull.js';

export interface RunFlags {
  rm?: boolean;
  interactive?: boolean;
  tty?: boolean;
  name?: string;
  hostname?: string;
  env: string[];
  envFile: string[];
  workdir?: string;
  user?: string;
  entrypoint?: string;
  memory?: string;
  cpus?: string;
  pidsLimit?: string;
  pull: string;
  platform?: string;
  quiet?: boolean;
}

function limitsFrom(flags: RunFlags): ContainerLimits {
  const limits: ContainerLimits = {};
  if (flags.memory !== undefined) {
    const bytes = parseBytes(flags.memory);
    // Above 2^53 (8192t) a number is no longer exact, and cgroup files refuse its exponent form.
    if (bytes === undefined || bytes < 6 * 1024 * 1024 || !Number.isSafeInteger(bytes)) {
      throw new MinidockError('ERR_BAD_FLAG', `invalid --memory ${JSON.stringify(flags.memory)}: want a size of at least 6m and below 8192t, such as 256m or 1g`);
    }
    limits.memory = bytes;
  }
  if (flags.cpus !== undefined) {
    const cpus = Number(flags.cpus);
    const max = availableParallelism();
    if (!Number.isFinite(cpus) || cpus < 0.01 || cpus > max) {
      throw new MinidockError('ERR_BAD_FLAG', `invalid --cpus ${JSON.stringify(flags.cpus)}: the range of CPUs is from 0.01 to ${max}`);
    }
    limits.cpus = cpus;
  }
  if (flags.pidsLimit !== undefined) {
    const n = Number(flags.pidsLimit);
    if (!Number.isSafeInteger(n) || n < -1) {
      throw new MinidockError('ERR_BAD_FLAG', `invalid --pids-limit ${JSON.stringify(flags.pidsLimit)}: want a whole number (0 or -1 for no limit)`);
    }
    limits.pidsLimit = n;
  }
  return limits;
}

/** Runs the container and returns the exit status the CLI should exit with. */
export async function runCommand(ctx: Context, image: string, args: string[], flags: RunFlags): Promise<number> {
  if (!['missing', 'always', 'never'].includes(flags.pull)) {
    throw new MinidockError('ERR_BAD_FLAG', `invalid --pull ${JSON.stringify(flags.pull)}: want missing, always or never`);
  }
  const limits = limitsFrom(flags);
  platformFlag(flags.platform);
  // Parse before any I/O, so a malformed reference fails fast.
  const isId = /^(?:sha256:)?[0-9a-f]{12,64}$/.test(image);
  const ref = isId ? undefined : parseReference(image);

  // As `docker run -it` when both ends are terminals and neither flag is given.
  let { interactive = false, tty = false } = flags;
  if (flags.interactive === undefined && flags.tty === undefined && process.stdin.isTTY && process.stdout.isTTY) {
    interactive = true;
    tty = true;
  }

  const store = await ctx.store();
  let record = flags.pull === 'always' ? undefined : await lookupImage(store, image, parseReference);
  const wanted = platformFlag(flags.platform);
  if (record && wanted && formatPlatform(record.platform) !== formatPlatform({ ...record.platform, ...wanted })) {
    // The store holds the image for another platform: fetch the one asked for.
    record = undefined;
  }
  if (record === undefined) {
    if (flags.pull === 'never' || ref === undefined) {
      throw new MinidockError('ERR_NOT_FOUND', `no such image: ${image}`, {
        hint: flags.pull === 'never' ? 'pull it first, or drop --pull never' : undefined,
      });
    }
    if (flags.pull !== 'always') process.stderr.write(`Unable to find image '${image}' locally\n`);
    ({ record } = await pullWithProgress(ctx, store, ref, { quiet: flags.quiet, platform: flags.platform }));
  }
  const config = await readImageConfig(store, record);

  return runContainer(store, {
    imageName: image,
    image: record,
    config,
    name: flags.name,
    args,
    entrypoint: flags.entrypoint,
    env: flags.env,
    envFiles: flags.envFile,
    workdir: flags.workdir,
    user: flags.user,
    hostname: flags.hostname,
    tty,
    interactive,
    limits,
    autoRemove: flags.rm ?? false,
    hostEnv: process.env,
    logger: ctx.logger,
  });
}
