/**
 * Digests: the names of content. A Digest is a checked "algorithm:hex"
 * string; a DiffID is the digest of a layer's uncompressed tar and is kept a
 * separate type so the two cannot be swapped by mistake.
 */
import { createHash, type Hash } from 'node:crypto';
import { Transform, type TransformCallback } from 'node:stream';
import { DigestMismatchError, InvalidReferenceError, MinidockError } from './errors.js';

declare const digestBrand: unique symbol;
declare const diffIDBrand: unique symbol;

/** A content digest such as "sha256:<64 hex>", checked by parseDigest. */
export type Digest = string & { readonly [digestBrand]: true };

/** The digest of a layer's uncompressed tar stream (image-spec rootfs.diff_ids). */
export type DiffID = Digest & { readonly [diffIDBrand]: true };

const hexLength: Record<string, number> = { sha256: 64, sha512: 128 };

/**
 * Parses s as a digest. Only sha256 and sha512 are accepted, with lower-case
 * hex of exactly the algorithm's length; anything else throws.
 */
export function parseDigest(s: string): Digest {
  const colon = s.indexOf(':');
  const algorithm = colon < 0 ? '' : s.slice(0, colon);
  const hex = s.slice(colon + 1);
  const want = hexLength[algorithm];
  if (want === undefined) {
    throw new MinidockError('ERR_BAD_DIGEST', `parse digest ${JSON.stringify(s)}: unsupported algorithm`);
  }
  if (hex.length !== want || !/^[0-9a-f]+$/.test(hex)) {
    throw new MinidockError(
      'ERR_BAD_DIGEST',
      `parse digest ${JSON.stringify(s)}: want ${want} lower-case hex digits`,
    );
  }
  return s as Digest;
}

/** Like parseDigest, for a reference's "@digest" part: errors name the reference. */
export function parseReferenceDigest(reference: string, s: string): Digest {
  try {
    return parseDigest(s);
  } catch (err) {
    throw new InvalidReferenceError(reference, (err as Error).message.replace(/^parse digest "[^"]*": /, 'digest: '));
  }
}

/** Returns the algorithm part of d ("sha256"). */
export function algorithmOf(d: Digest): string {
  return d.slice(0, d.indexOf(':'));
}

/** Returns the hex part of d. */
export function hexOf(d: Digest): string {
  return d.slice(d.indexOf(':') + 1);
}

/** Returns the sha256 digest of bytes. */
export function digestOf(bytes: Uint8Array | string): Digest {
  return `sha256:${createHash('sha256').update(bytes).digest('hex')}` as Digest;
}

/** Marks d as the digest of uncompressed layer content. */
export function asDiffID(d: Digest): DiffID {
  return d as DiffID;
}

/**
 * A pass-through stream that hashes and counts what flows through it. After
 * 'end', `digest` and `size` hold the totals; `verify` compares them with
 * what a descriptor promised. It emits 'progress' (bytes so far) per chunk,
 * which, unlike a 'data' listener, leaves the stream's flow alone.
 */
export class DigestingStream extends Transform {
  #hash: Hash;
  #algorithm: string;
  #digest?: Digest;
  #limit?: { bytes: number; what: string };
  size = 0;

  /**
   * With `limit`, the stream fails as soon as more than limit.bytes pass, so
   * a server cannot make us store more than a descriptor announced.
   */
  constructor(options: { algorithm?: string; limit?: { bytes: number; what: string } } = {}) {
    super();
    this.#algorithm = options.algorithm ?? 'sha256';
    this.#hash = createHash(this.#algorithm);
    this.#limit = options.limit;
  }

  override _transform(chunk: Buffer, _enc: BufferEncoding, done: TransformCallback): void {
    this.size += chunk.length;
    if (this.#limit && this.size > this.#limit.bytes) {
      done(new DigestMismatchError(`size of ${this.#limit.what}`, `${this.#limit.bytes} bytes`, `more than ${this.#limit.bytes} bytes`));
      return;
    }
    this.#hash.update(chunk);
    this.emit('progress', this.size);
    done(null, chunk);
  }

  override _flush(done: TransformCallback): void {
    this.#digest = `${this.#algorithm}:${this.#hash.digest('hex')}` as Digest;
    done();
  }

  /** The digest of everything that passed; only valid once the stream ended. */
  get digest(): Digest {
    if (this.#digest === undefined) throw new Error('[internal error] digest read before end of stream');
    return this.#digest;
  }

  /** Throws DigestMismatchError unless the content matched expected (and size, if given). */
  verify(what: string, expected: Digest, expectedSize?: number): void {
    if (expectedSize !== undefined && this.size !== expectedSize) {
      throw new DigestMismatchError(`size of ${what}`, `${expectedSize} bytes`, `${this.size} bytes`);
    }
    if (this.digest !== expected) throw new DigestMismatchError(what, expected, this.digest);
  }
}
