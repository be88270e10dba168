/**
 * Parsing manifests and indexes from the exact bytes a registry or a layout
 * holds. The raw bytes are kept beside the parsed value: digests are over
 * bytes, never over re-encoded JSON.
 */
import { parseDigest } from '../digest.js';
import { MinidockError, NotImplementedError } from '../errors.js';
import { isIndex, isManifest, isSchema1 } from './media-types.js';
import type { Descriptor, ImageConfig, ImageIndex, ImageManifest } from './types.js';

export type ParsedManifest =
  | { kind: 'index'; mediaType: string; index: ImageIndex; raw: Buffer }
  | { kind: 'manifest'; mediaType: string; manifest: ImageManifest; raw: Buffer };

function bad(what: string, why: string): MinidockError {
  return new MinidockError('ERR_BAD_MANIFEST', `parse ${what}: ${why}`);
}

function checkDescriptor(what: string, d: unknown): Descriptor {
  const o = d as Partial<Descriptor> | null;
  if (typeof o !== 'object' || o === null) throw bad(what, 'descriptor is not an object');
  if (typeof o.mediaType !== 'string') throw bad(what, 'descriptor has no mediaType');
  if (typeof o.size !== 'number' || !Number.isSafeInteger(o.size) || o.size < 0) {
    throw bad(what, 'descriptor has no valid size');
  }
  parseDigest(String(o.digest));
  return o as Descriptor;
}

/**
 * Parses a manifest or index. The media type comes from the body when it
 * names one, else from contentType, else from the shape (manifests vs
 * layers). Schema 1 manifests are refused as too old.
 */
export function parseManifest(raw: Buffer, contentType?: string, what = 'manifest'): ParsedManifest {
  let body: Record<string, unknown>;
  try {
    body = JSON.parse(raw.toString('utf8'));
  } catch (err) {
    throw bad(what, `not JSON (${(err as Error).message})`);
  }
  if (typeof body !== 'object' || body === null || Array.isArray(body)) throw bad(what, 'not a JSON object');

  const ct = contentType?.split(';')[0]?.trim();
  let mediaType = typeof body.mediaType === 'string' ? body.mediaType : undefined;
  if (mediaType === undefined && (isIndex(ct) || isManifest(ct) || isSchema1(ct))) mediaType = ct;
  if (isSchema1(mediaType) || body.schemaVersion === 1) {
    throw new MinidockError(
      'ERR_SCHEMA1',
      `parse ${what}: the image format is too old (Docker image manifest schema 1, which minidock does not read)`,
      { hint: 'rebuild or re-push the image with a current tool; it will get a schema 2 or OCI manifest' },
    );
  }
  if (mediaType === undefined) {
    if (Array.isArray(body.manifests)) mediaType = 'application/vnd.oci.image.index.v1+json';
    else if (Array.isArray(body.layers)) mediaType = 'application/vnd.oci.image.manifest.v1+json';
  }
  if (body.schemaVersion !== 2) throw bad(what, `schemaVersion ${String(body.schemaVersion)} is not 2`);

  if (isIndex(mediaType)) {
    if (!Array.isArray(body.manifests)) throw bad(what, 'index has no manifests');
    body.manifests.forEach((d) => checkDescriptor(what, d));
    return { kind: 'index', mediaType: mediaType!, index: body as unknown as ImageIndex, raw };
  }
  if (isManifest(mediaType)) {
    if (!Array.isArray(body.layers)) throw bad(what, 'manifest has no layers');
    checkDescriptor(what, body.config);
    body.layers.forEach((d) => checkDescriptor(what, d));
    return { kind: 'manifest', mediaType: mediaType!, manifest: body as unknown as ImageManifest, raw };
  }
  throw new NotImplementedError(`manifest media type ${JSON.stringify(mediaType ?? ct ?? 'unknown')}`);
}

/** Parses an image config blob and checks the fields minidock relies on. */
export function parseImageConfig(raw: Buffer): ImageConfig {
  let c: ImageConfig;
  try {
    c = JSON.parse(raw.toString('utf8'));
  } catch (err) {
    throw bad('image config', `not JSON (${(err as Error).message})`);
  }
  if (typeof c !== 'object' || c === null || Array.isArray(c)) throw bad('image config', 'not a JSON object');
  if (!c.rootfs || !Array.isArray(c.rootfs.diff_ids)) throw bad('image config', 'no rootfs.diff_ids');
  c.rootfs.diff_ids.forEach((d) => parseDigest(String(d)));
  checkString('architecture', c.architecture);
  checkString('os', c.os);
  if (c.config !== undefined && c.config !== null) checkContainerConfig(c.config);
  return c;
}

function checkString(field: string, v: unknown): void {
  if (typeof v !== 'string') throw bad('image config', `${field} is not a string`);
  // A NUL cannot pass through execve or a path: refused here, not at run.
  if (v.includes('\0')) throw bad('image config', `${field} holds a NUL byte`);
}

function checkStrings(field: string, v: unknown): void {
  if (!Array.isArray(v)) throw bad('image config', `${field} is not an array of strings`);
  v.forEach((s, i) => checkString(`${field}[${i}]`, s));
}

/**
 * Checks the execution fields `run` uses, as the image-spec types them. Cmd
 * and Entrypoint may be null (Docker writes that for "none").
 */
function checkContainerConfig(cc: unknown): void {
  if (typeof cc !== 'object' || Array.isArray(cc)) throw bad('image config', 'config is not an object');
  const { User, Env, Entrypoint, Cmd, WorkingDir } = cc as Record<string, unknown>;
  if (User !== undefined) checkString('config.User', User);
  if (WorkingDir !== undefined) checkString('config.WorkingDir', WorkingDir);
  if (Entrypoint !== undefined && Entrypoint !== null) checkStrings('config.Entrypoint', Entrypoint);
  if (Cmd !== undefined && Cmd !== null) checkStrings('config.Cmd', Cmd);
  if (Env !== undefined && Env !== null) {
    checkStrings('config.Env', Env);
    // "KEY" alone would copy the value from minidock's own environment.
    (Env as string[]).forEach((e, i) => {
      if (e.indexOf('=') < 1) throw bad('image config', `config.Env[${i}] is not KEY=value`);
    });
  }
}
