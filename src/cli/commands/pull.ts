/**
 * `minidock pull IMAGE`
 */
import { MinidockError } from '../../errors.js';
import { parsePlatform, type Platform } from '../../image/index.js';
import { familiarName, formatReference, parseReference, type Reference } from '../../reference.js';
import type { ImageRecord, Store } from '../../store/index.js';
import { registryOptions, type Context } from '../context.js';
import { progressRenderer } from '../progress.js';

export interface PullFlags {
  quiet?: boolean;
  platform?: string;
}

/** Parses --platform, refusing a malformed value. */
export function platformFlag(value: string | undefined): Platform | undefined {
  if (value === undefined) return undefined;
  const p = parsePlatform(value);
  if (!p) {
    throw new MinidockError('ERR_BAD_PLATFORM', `parse platform ${JSON.stringify(value)}: want os/arch[/variant]`, {
      hint: 'for example linux/amd64 or linux/arm64/v8',
    });
  }
  return p;
}

/**
 * Pulls ref into store, drawing progress on stderr. Loads the registry
 * client only here, so commands that do not pull never pay for it.
 */
export async function pullWithProgress(
  ctx: Context,
  store: Store,
  ref: Reference,
  flags: PullFlags,
): Promise<{ record: ImageRecord; digest: string }> {
  const { pullImage } = await import('../../pull/index.js');
  const { CredentialStore } = await import('../../registry/index.js');
  const credentials = new CredentialStore({ configPath: ctx.dockerConfigPath, env: process.env, logger: ctx.logger });
  const quiet = flags.quiet ?? false;
  if (!quiet) process.stderr.write(`${ref.tag ?? ref.digest}: Pulling from ${familiarName(ref)}\n`);
  const renderer = progressRenderer(process.stderr, { quiet });
  try {
    const result = await pullImage(store, ref, {
      logger: ctx.logger,
      progress: (e) => renderer.update(e),
      platform: platformFlag(flags.platform),
      registry: { ...registryOptions(ctx), credentials: credentials.lookup() },
    });
    renderer.done();
    if (!quiet) {
      const shown = ref.tag !== undefined ? `${familiarName(ref)}:${ref.tag}` : `${familiarName(ref)}@${ref.digest}`;
      process.stderr.write(`Digest: ${result.digest}\n`);
      process.stderr.write(`Image ID: ${result.record.id}\n`);
      process.stderr.write(
        result.upToDate ? `Status: Image is up to date for ${shown}\n` : `Status: Downloaded newer image for ${shown}\n`,
      );
    }
    return { record: result.record, digest: result.digest };
  } catch (err) {
    renderer.done();
    throw err;
  }
}

export async function pullCommand(ctx: Context, image: string, flags: PullFlags): Promise<void> {
  const ref = parseReference(image);
  platformFlag(flags.platform);
  const store = await ctx.store();
  const { digest } = await pullWithProgress(ctx, store, ref, flags);
  // As `docker pull` prints the reference; with -q, only the resolved
  // digest, which scripts can pin.
  process.stdout.write(flags.quiet ? `${digest}\n` : `${formatReference(ref)}\n`);
}
