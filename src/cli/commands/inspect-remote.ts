/**
 * `minidock inspect --remote REF` and `minidock layers --remote REF N`:
 * read a registry, store nothing. Loads the registry client, so only these
 * paths pay for undici.
 */
import { MinidockError } from '../../errors.js';
import { formatPlatform, hostPlatform, type Platform } from '../../image/index.js';
import { fetchRemoteImage, listRemoteLayer, pickLayer, type TarListing } from '../../inspect/index.js';
import { parseReference, type Reference } from '../../reference.js';
import { CredentialStore, RegistryClient } from '../../registry/index.js';
import { registryOptions, type Context } from '../context.js';
import { humanSize, printable, table } from '../output.js';
import { changeLine, entryJSON, out, runConfigJSON, schemaVersion } from './inspect-target.js';

function client(ctx: Context): RegistryClient {
  const credentials = new CredentialStore({ configPath: ctx.dockerConfigPath, env: process.env, logger: ctx.logger });
  return new RegistryClient({
    logger: ctx.logger,
    ...registryOptions(ctx),
    credentials: credentials.lookup(),
  });
}

/** Prints what the registry holds for name (manifest, index platforms, config), storing nothing. */
export async function inspectRemote(
  ctx: Context,
  name: string,
  flags: { format: 'text' | 'json'; platform?: Platform; raw?: string },
): Promise<void> {
  const ref = parseReference(name);
  const c = client(ctx);
  try {
    const img = await fetchRemoteImage(c, ref, flags.platform ?? hostPlatform());
    if (flags.raw !== undefined) {
      process.stdout.write(flags.raw === 'manifest' ? img.manifest.raw : img.rawConfig);
      return;
    }
    const m = img.manifest.manifest;
    const cc = img.config.config ?? {};
    const layers = m.layers.map((l, i) => ({ index: i + 1, digest: l.digest, diffID: img.config.rootfs?.diff_ids?.[i] ?? null, mediaType: l.mediaType, size: l.size }));
    if (flags.format === 'json') {
      const json = {
        schemaVersion,
        kind: 'remote',
        reference: name,
        digest: img.top.digest,
        mediaType: img.top.mediaType,
        ...(img.platforms !== undefined ? { index: img.top.raw.toString('utf8'), platforms: img.platforms } : {}),
        manifestDigest: img.manifest.digest,
        manifestMediaType: img.manifest.mediaType,
        manifest: img.manifest.raw.toString('utf8'),
        config: img.config,
        platform: { os: img.config.os, architecture: img.config.architecture, ...(img.config.variant ? { variant: img.config.variant } : {}) },
        size: layers.reduce((s, l) => s + l.size, 0),
        layers,
        ...runConfigJSON(img.config),
      };
      out(`${JSON.stringify(json, null, 2)}\n`);
      return;
    }
    let s = `Reference:   ${name}\nDigest:      ${img.top.digest} (${img.top.mediaType})\n`;
    if (img.platforms !== undefined) {
      s += 'Platforms:\n';
      s += `${table(['PLATFORM', 'DIGEST', 'SIZE', 'MEDIA TYPE'], img.platforms.map((p) => [p.attestation ? `${p.platform} (attestation)` : p.platform, p.digest, String(p.size), p.mediaType]))
        .split('\n')
        .map((l) => `  ${l}`)
        .join('\n')}\n`;
      s += `Manifest:    ${img.manifest.digest} (${img.manifest.mediaType})\n`;
    }
    s += `Platform:    ${formatPlatform({ os: img.config.os, architecture: img.config.architecture, variant: img.config.variant })}\n`;
    s += `Created:     ${img.config.created ?? '-'}\n`;
    s += `Entrypoint:  ${cc.Entrypoint ? JSON.stringify(cc.Entrypoint) : '-'}\n`;
    s += `Cmd:         ${cc.Cmd ? JSON.stringify(cc.Cmd) : '-'}\n`;
    s += `Size:        ${humanSize(layers.reduce((n, l) => n + l.size, 0))} compressed\n`;
    s += 'Layers:\n';
    s += `${table(['#', 'DIGEST', 'SIZE', 'MEDIA TYPE'], layers.map((l) => [String(l.index), l.digest, humanSize(l.size), l.mediaType]))
      .split('\n')
      .map((l) => `  ${l}`)
      .join('\n')}\n`;
    out(s);
  } finally {
    await c.close();
  }
}

/**
 * Streams one layer of name from the registry and prints its entries as they
 * pass, storing nothing; fails after the listing if the blob does not match
 * its digest or diffID.
 */
export async function layersRemote(
  ctx: Context,
  name: string,
  which: string | undefined,
  flags: { format: 'text' | 'json'; platform?: Platform; filter?: string },
): Promise<void> {
  if (which === undefined) {
    throw new MinidockError('ERR_BAD_ARGUMENT', 'layers --remote needs a layer', { hint: 'minidock layers --remote REF N (N from 1, or a digest)' });
  }
  const ref: Reference = parseReference(name);
  const c = client(ctx);
  try {
    const img = await fetchRemoteImage(c, ref, flags.platform ?? hostPlatform());
    const m = img.manifest.manifest;
    const diffIDs = img.config.rootfs?.diff_ids ?? [];
    const chosen = pickLayer({ layers: m.layers.map((l, i) => ({ index: i + 1, digest: l.digest, diffID: diffIDs[i]!, mediaType: l.mediaType, size: l.size })) }, which);
    const desc = m.layers[chosen.index - 1]!;
    const filter = flags.filter === undefined ? undefined : flags.filter.replace(/^\/+|\/+$/g, '');
    const keep = (e: TarListing) => filter === undefined || filter === '' || e.path === filter || e.path.startsWith(`${filter}/`);
    const json = flags.format === 'json';
    let first = true;
    if (json) {
      out(`{"schemaVersion":${schemaVersion},"reference":${JSON.stringify(name)},"layers":[{"index":${chosen.index},"digest":${JSON.stringify(desc.digest)},"diffID":${JSON.stringify(chosen.diffID ?? null)},"mediaType":${JSON.stringify(desc.mediaType)},"size":${desc.size},"changes":[\n`);
    } else {
      out(`Layer ${chosen.index}/${m.layers.length}  ${desc.digest}  (${humanSize(desc.size)} compressed, streamed from the registry)\n`);
    }
    const { entries } = await listRemoteLayer(c, ref, desc, diffIDs[chosen.index - 1], (e) => {
      if (!keep(e)) return;
      if (json) {
        out(`${first ? '' : ',\n'}${JSON.stringify({ op: e.op, ...entryJSON(e), ...(e.deletedBy ? { deletedBy: e.deletedBy } : {}) })}`);
        first = false;
        return;
      }
      out(`${remoteLine(e)}\n`);
    });
    if (json) out(`\n],"entries":${entries}}]}\n`);
  } finally {
    await c.close();
  }
}

function remoteLine(e: TarListing): string {
  if (e.op === 'D' && e.deletedBy === 'opaque') return `D  ${'(opaque dir)'.padEnd(34)}/${printable(e.path)}/* (what lower layers hold below)`;
  return changeLine(e);
}
