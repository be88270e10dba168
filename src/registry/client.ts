/**
 * RegistryClient: the Distribution API v2 calls minidock makes to pull an
 * image (manifests by tag or digest, blobs whole or from an offset).
 */
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import type { Readable } from 'node:stream';
import { Agent, Pool } from 'undici';
import { algorithmOf, parseDigest, type Digest } from '../digest.js';
import { DigestMismatchError, MinidockError, NotFoundError, RegistryError, messageOf } from '../errors.js';
import {
  formatPlatform,
  isAttestation,
  isForeignLayer,
  manifestAccept,
  parseManifest,
  selectPlatform,
  type Descriptor,
  type ImageManifest,
  type ParsedManifest,
  type Platform,
} from '../image/index.js';
import { silentLogger, type Logger } from '../log.js';
import { defaultRegistry, isLoopbackRegistry, type Reference } from '../reference.js';
import { Authenticator, type CredentialsLookup } from './auth.js';
import { CertsDir, type HostTLS } from './certs.js';
import {
  Transport,
  discardBody,
  headerOf,
  readCapped,
  readErrorBody,
  redactUrl,
  responseError,
  type Response,
  type RetryOptions,
} from './transport.js';

/** Options of a RegistryClient. */
export interface RegistryClientOptions {
  logger?: Logger;
  /** Registries spoken to over plain http, as "host" or "host:port". Loopback always is. */
  insecureRegistries?: string[];
  /** The User-Agent header; default "minidock". */
  userAgent?: string;
  /**
   * Returns the credentials for a registry host, used as Basic auth towards
   * its token realm or for a Basic challenge. Default: anonymous.
   */
  credentials?: CredentialsLookup;
  /** Retry policy for 429, 5xx and dropped connections (3 tries by default). */
  retry?: RetryOptions;
  /** How long a manifest or config body may take to arrive in full (default 60 s). */
  smallBodyDeadlineMs?: number;
  /** The clock bearer tokens expire by (default Date.now); tests move it. */
  now?: () => number;
  /**
   * The certs.d root: per-registry CA certificates and client certificates
   * in Docker's layout (see certs.ts). Default /etc/minidock/certs.d. A
   * loopback registry with an entry there is spoken to over https.
   */
  certsDir?: string;
  /** The system CA bundle trusted for every https host, beside Node's roots; default Debian's. */
  systemCAFile?: string;
  /**
   * Mirrors of docker.io, as URLs ("https://mirror.example"), tried in
   * order before docker.io itself for docker.io references. Credentials
   * for a mirror are looked up under the mirror's own host.
   */
  mirrors?: string[];
  /**
   * Where docker.io is reached; default https://registry-1.docker.io.
   * Tests point it at a local server.
   */
  hubOrigin?: string;
  /**
   * A PEM file of CAs trusted besides Node's own, as NODE_EXTRA_CA_CERTS
   * (which bin/minidock.js hands over under another name, so that Node
   * does not load it at every start-up).
   */
  extraCaCertsFile?: string;
}

/** Where one registry is reached: the key its credentials and tokens go by, and its origin. */
interface Endpoint {
  key: string;
  origin: URL;
  mirror: boolean;
}

/** Parses an http(s) origin given in configuration ("https://host[:port]", no path). */
function parseOrigin(value: string, what: string): URL {
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    throw new MinidockError('ERR_CONFIG', `${what} ${JSON.stringify(value)} is not a URL`, {
      hint: 'give it as https://host[:port]',
    });
  }
  const http = url.protocol === 'https:' || url.protocol === 'http:';
  if (!http || url.pathname !== '/' || url.search !== '' || url.username !== '') {
    throw new MinidockError(
      'ERR_CONFIG',
      `${what} ${JSON.stringify(value)}: want http(s)://host[:port] and nothing more`,
    );
  }
  return new URL(url.origin);
}

/**
 * Reads the extra CAs file (PEM). A file that cannot be used is ignored with
 * a warning, as Node ignores a bad NODE_EXTRA_CA_CERTS.
 */
function readExtraCas(file: string | undefined, logger: Logger): string | undefined {
  if (file === undefined) return undefined;
  try {
    const pem = readFileSync(file, 'utf8');
    if (!pem.includes('-----BEGIN CERTIFICATE-----')) throw new Error('no PEM certificate in it');
    return pem;
  } catch (err) {
    logger.warn(`ignoring extra CA certificates from ${JSON.stringify(file)}: ${messageOf(err)}`);
    return undefined;
  }
}

/** Per-call options. */
export interface RequestOptions {
  signal?: AbortSignal;
}

/** A manifest or index as fetched: exact bytes, their digest and the parsed value. */
export interface FetchedManifest {
  raw: Buffer;
  mediaType: string;
  digest: Digest;
  parsed: ParsedManifest;
}

/** The image manifest a reference resolves to for one platform. */
export interface ResolvedImage {
  manifest: ImageManifest;
  rawManifest: Buffer;
  manifestDigest: Digest;
  mediaType: string;
  /** Set when the reference named an index (manifest list). */
  indexDigest?: Digest;
  rawIndex?: Buffer;
}

/** A blob body opened for streaming. */
export interface OpenedBlob {
  body: Readable;
  /** The byte the body starts at: the offset asked for, or 0 when the server ignored Range. */
  offset: number;
  /** Bytes the body will carry, when the server said. */
  contentLength?: number;
}

/** Manifests and configs are read whole; nothing larger than this is. */
export const smallBodyLimit = 4 * 1024 * 1024;

const maxRedirects = 5;
const redirectStatuses = new Set([301, 302, 303, 307, 308]);

function digestWith(algorithm: string, bytes: Buffer): Digest {
  return parseDigest(`${algorithm}:${createHash(algorithm).update(bytes).digest('hex')}`);
}

function isDigestString(s: string): boolean {
  return s.includes(':');
}

function display(ref: Reference, tagOrDigest: string): string {
  const base = `${ref.registry}/${ref.repository}`;
  return isDigestString(tagOrDigest) ? `${base}@${tagOrDigest}` : `${base}:${tagOrDigest}`;
}

/**
 * A client for Distribution API v2 registries. One undici Agent holds a
 * keep-alive connection pool per origin (the registry, its token realm,
 * blob storage it redirects to). Tokens are cached per registry and scope
 * for the client's lifetime. Call close() when done; it ends the pools.
 *
 * Plain http is used for loopback registries and those listed in
 * insecureRegistries, unless certs.d holds an entry for the registry;
 * https otherwise. docker.io is reached at registry-1.docker.io.
 */
export class RegistryClient {
  readonly #logger: Logger;
  readonly #insecure: Set<string>;
  readonly #userAgent: string;
  readonly #agent: Agent;
  readonly #transport: Transport;
  readonly #auth: Authenticator;
  readonly #deadline: number | undefined;
  readonly #certs: CertsDir;
  readonly #hubOrigin: URL;
  readonly #mirrors: Endpoint[];
  readonly #failedMirrors = new Set<string>();

  constructor(options: RegistryClientOptions = {}) {
    this.#logger = options.logger ?? silentLogger;
    this.#insecure = new Set(options.insecureRegistries ?? []);
    this.#userAgent = options.userAgent ?? 'minidock';
    this.#deadline = options.smallBodyDeadlineMs;
    this.#certs = new CertsDir(options.certsDir, options.systemCAFile);
    this.#hubOrigin = parseOrigin(options.hubOrigin ?? 'https://registry-1.docker.io', 'hub origin');
    this.#mirrors = (options.mirrors ?? []).map((m) => {
      const origin = parseOrigin(m, 'registry mirror');
      return { key: origin.host, origin, mirror: true };
    });
    const extraCas = readExtraCas(options.extraCaCertsFile, this.#logger);
    this.#agent = new Agent({
      keepAliveTimeout: 30_000,
      connections: 8,
      headersTimeout: 60_000,
      bodyTimeout: 60_000,
      // One pool per origin; https origins trust the system's CAs and the
      // extra CAs, and get their certs.d entry's CAs and client certificate.
      factory: (origin, opts) => {
        const url = new URL(String(origin));
        if (url.protocol !== 'https:') return new Pool(url, opts);
        return new Pool(url, { ...opts, connect: { ...this.#tlsFor(url.host, extraCas) } });
      },
    });
    this.#transport = new Transport(this.#agent, this.#logger, options.retry);
    this.#auth = new Authenticator({
      transport: this.#transport,
      logger: this.#logger,
      userAgent: this.#userAgent,
      credentials: options.credentials,
      allowsPlainHttp: (host) => this.#allowsPlainHttp(host),
      now: options.now,
    });
  }

  /**
   * GETs the manifest or index for ref's repository at tagOrDigest. When
   * tagOrDigest is a digest, the bytes must hash to it and a
   * Docker-Content-Digest header must agree (DigestMismatchError otherwise).
   * The media type comes from the body, else from Content-Type. A 404 is a
   * NotFoundError; bodies over 4 MiB are refused unread.
   */
  async fetchManifest(ref: Reference, tagOrDigest: string, opts: RequestOptions = {}): Promise<FetchedManifest> {
    return this.#viaMirrors(ref, opts.signal, (e) => this.#fetchManifest(e, ref, tagOrDigest, opts));
  }

  async #fetchManifest(
    e: Endpoint,
    ref: Reference,
    tagOrDigest: string,
    opts: RequestOptions,
  ): Promise<FetchedManifest> {
    const what = display(ref, tagOrDigest);
    const expected = isDigestString(tagOrDigest) ? parseDigest(tagOrDigest) : undefined;
    const path = `/v2/${ref.repository}/manifests/${expected ?? encodeURIComponent(tagOrDigest)}`;

    const { res, url } = await this.#get(e, ref, path, { accept: manifestAccept }, opts.signal);
    if (res.statusCode !== 200) {
      const err = await responseError('GET', url, res);
      if (res.statusCode === 404) {
        throw new NotFoundError(`resolve ${what}: manifest unknown`, {
          cause: err,
          hint: 'check the image name and tag; the registry has no manifest for them',
        });
      }
      throw this.#withAuthHint(err);
    }

    const raw = await readCapped(res, smallBodyLimit, `manifest ${what}`, this.#deadline);
    const digest = digestWith(expected === undefined ? 'sha256' : algorithmOf(expected), raw);
    const headerDigest = headerOf(res, 'docker-content-digest')?.trim();
    if (expected !== undefined) {
      if (digest !== expected) throw new DigestMismatchError(`manifest ${what}`, expected, digest);
      if (headerDigest !== undefined && headerDigest !== expected) {
        throw new DigestMismatchError(`Docker-Content-Digest of manifest ${what}`, expected, headerDigest);
      }
    } else if (headerDigest !== undefined) {
      // Registries get this header wrong often enough that, for a tag, a
      // disagreement is worth a warning but not a refusal: nothing was
      // promised about the bytes.
      const algorithm = headerDigest.split(':')[0]!;
      const own = algorithm === 'sha256' || algorithm === 'sha512' ? digestWith(algorithm, raw) : undefined;
      if (own !== undefined && own !== headerDigest) {
        this.#logger.warn(`manifest ${what}: Docker-Content-Digest ${headerDigest} disagrees with content ${own}`);
      }
    }

    const parsed = parseManifest(raw, headerOf(res, 'content-type'), `manifest ${what}`);
    return { raw, mediaType: parsed.mediaType, digest, parsed };
  }

  /**
   * Resolves ref (its digest if pinned, else its tag) to one image manifest
   * for platform. An index is followed to the entry selectPlatform picks,
   * attestations skipped; the entry's bytes are verified against its
   * descriptor. No matching entry is a MinidockError (ERR_NO_PLATFORM)
   * listing the platforms offered.
   */
  async resolve(ref: Reference, platform: Platform, opts: RequestOptions = {}): Promise<ResolvedImage> {
    const top = await this.fetchManifest(ref, ref.digest ?? ref.tag ?? 'latest', opts);
    if (top.parsed.kind === 'manifest') {
      return {
        manifest: top.parsed.manifest,
        rawManifest: top.raw,
        manifestDigest: top.digest,
        mediaType: top.mediaType,
      };
    }

    const entries = top.parsed.index.manifests;
    const entry = selectPlatform(entries, platform);
    if (entry === undefined) {
      const offered = entries
        .filter((d) => !isAttestation(d) && d.platform !== undefined)
        .map((d) => formatPlatform(d.platform!));
      const list = offered.length > 0 ? offered.join(', ') : 'none';
      throw new MinidockError(
        'ERR_NO_PLATFORM',
        `no matching manifest for ${formatPlatform(platform)} in the manifest list entries: ${list}`,
        { hint: offered.length > 0 ? 'pick one of these with --platform' : undefined },
      );
    }
    this.#logger.debug(`index ${top.digest}: ${formatPlatform(platform)} is ${entry.digest}`);

    const child = await this.fetchManifest(ref, entry.digest, opts);
    if (child.raw.length !== entry.size) {
      throw new DigestMismatchError(`size of manifest ${entry.digest}`, `${entry.size} bytes`, `${child.raw.length} bytes`);
    }
    if (child.parsed.kind !== 'manifest') {
      throw new MinidockError(
        'ERR_BAD_MANIFEST',
        `resolve ${display(ref, top.digest)}: entry ${entry.digest} for ` +
          `${formatPlatform(platform)} is an index, not an image manifest`,
      );
    }
    return {
      manifest: child.parsed.manifest,
      rawManifest: child.raw,
      manifestDigest: child.digest,
      mediaType: child.mediaType,
      indexDigest: top.digest,
      rawIndex: top.raw,
    };
  }

  /**
   * GETs a small blob (an image config) into memory and verifies its size
   * and digest against d. Blobs over 4 MiB are refused before any request.
   */
  async fetchSmallBlob(ref: Reference, d: Descriptor, opts: RequestOptions = {}): Promise<Buffer> {
    return this.#viaMirrors(ref, opts.signal, (e) => this.#fetchSmallBlob(e, ref, d, opts));
  }

  async #fetchSmallBlob(
    e: Endpoint,
    ref: Reference,
    d: Descriptor,
    opts: RequestOptions,
  ): Promise<Buffer> {
    const what = `blob ${d.digest}`;
    if (d.size > smallBodyLimit) {
      throw new MinidockError('ERR_TOO_LARGE', `fetch ${what}: ${d.size} bytes is over the 4 MiB limit for configs`);
    }
    const { res, url } = await this.#get(e, ref, `/v2/${ref.repository}/blobs/${d.digest}`, {}, opts.signal);
    if (res.statusCode !== 200) throw this.#withAuthHint(await responseError('GET', url, res));

    const raw = await readCapped(res, smallBodyLimit, what, this.#deadline);
    if (raw.length !== d.size) throw new DigestMismatchError(`size of ${what}`, `${d.size} bytes`, `${raw.length} bytes`);
    const got = digestWith(algorithmOf(d.digest), raw);
    if (got !== d.digest) throw new DigestMismatchError(what, d.digest, got);
    return raw;
  }

  /**
   * Opens blob d for streaming from byte `offset` (default 0). With an
   * offset, a Range request is sent; a 206 must start at that offset, and a
   * 200 (Range ignored) comes back with offset 0 so the caller restarts.
   * The body is NOT verified: the caller hashes it as it writes. The caller
   * must read the body to its end or destroy it.
   */
  async openBlob(
    ref: Reference,
    d: Descriptor,
    opts: { offset?: number; signal?: AbortSignal } = {},
  ): Promise<OpenedBlob> {
    // A foreign layer comes from its own urls, whichever endpoint serves the rest.
    if (isForeignLayer(d.mediaType) && (d.urls?.length ?? 0) > 0) {
      return this.#openBlob(undefined, ref, d, opts);
    }
    return this.#viaMirrors(ref, opts.signal, (e) => this.#openBlob(e, ref, d, opts));
  }

  async #openBlob(
    e: Endpoint | undefined,
    ref: Reference,
    d: Descriptor,
    opts: { offset?: number; signal?: AbortSignal },
  ): Promise<OpenedBlob> {
    const offset = opts.offset ?? 0;
    if (!Number.isSafeInteger(offset) || offset < 0) {
      throw new MinidockError('ERR_BAD_ARGUMENT', `open blob ${d.digest}: offset ${offset} is not a byte position`);
    }
    const headers: Record<string, string> = {};
    if (offset > 0) headers.range = `bytes=${offset}-`;

    const { res, url } =
      e === undefined
        ? await this.#getForeign(d, headers, opts.signal)
        : await this.#get(e, ref, `/v2/${ref.repository}/blobs/${d.digest}`, headers, opts.signal);
    const length = Number(headerOf(res, 'content-length'));
    const contentLength = Number.isSafeInteger(length) && length >= 0 ? length : undefined;

    if (res.statusCode === 200) return { body: res.body, offset: 0, contentLength };
    if (res.statusCode === 206 && offset > 0) {
      const contentRange = headerOf(res, 'content-range') ?? '';
      const range = /^bytes (\d+)-\d+\/(?:\d+|\*)$/.exec(contentRange.trim());
      if (range === null || Number(range[1]) !== offset) {
        discardBody(res);
        throw new RegistryError(
          `GET ${redactUrl(url)}: 206 Partial Content: Content-Range ` +
            `${JSON.stringify(contentRange)} does not start at byte ${offset}`,
          206,
          false,
          { method: 'GET', url: redactUrl(url) },
        );
      }
      return { body: res.body, offset, contentLength };
    }
    throw this.#withAuthHint(await responseError('GET', url, res));
  }

  /**
   * GETs a foreign layer from its urls, in order, until one answers 200 or
   * 206: never from the registry, never with its credentials, and
   * following redirects only among the urls' own hosts. The blob is
   * verified by the caller as any other.
   */
  async #getForeign(
    d: Descriptor,
    extra: Record<string, string>,
    signal?: AbortSignal,
  ): Promise<{ res: Response; url: URL }> {
    // Each url is checked first, so that the hosts redirects may reach are
    // known; then tried in order.
    const hosts = new Set<string>();
    const candidates = (d.urls ?? []).map((u): URL | string => {
      let url: URL;
      try {
        url = new URL(u);
      } catch {
        return `${JSON.stringify(u)}: not a URL`;
      }
      if (url.protocol !== 'https:' && url.protocol !== 'http:') return `${redactUrl(url)}: not http(s)`;
      if (url.protocol === 'http:' && !this.#allowsPlainHttp(url.host)) return `${redactUrl(url)}: plain http`;
      hosts.add(url.host);
      return url;
    });
    const failures: string[] = [];
    for (const url of candidates) {
      if (typeof url === 'string') {
        failures.push(url);
        continue;
      }
      try {
        const got = await this.#fetch({ url, hosts, extra, signal });
        if (got.res.statusCode === 200 || got.res.statusCode === 206) return got;
        failures.push((await responseError('GET', got.url, got.res)).message);
      } catch (err) {
        if (signal?.aborted) throw err;
        failures.push(`${redactUrl(url)}: ${(err as Error).message}`);
      }
    }
    throw new RegistryError(`fetch foreign layer ${d.digest}: ${failures.join('; ')}`, undefined, false, {
      hint: 'a foreign layer comes only from the urls its descriptor lists',
    });
  }

  /**
   * Checks that registry accepts the client's credentials, as `docker
   * login` does: GET /v2/, answering its challenge (a token with no
   * repository scope, or Basic). Resolves when the registry answers 200;
   * a refusal (401 from the registry or its token realm) is a RegistryError
   * with status 401 reading "login to HOST: unauthorized: <why>". Other
   * failures are thrown as they come.
   */
  async checkLogin(registry: string, opts: RequestOptions = {}): Promise<void> {
    const op = `login to ${registry}`;
    const unauthorized = (detail: string | undefined, codes: string[], cause?: unknown): RegistryError =>
      new RegistryError(`${op}: unauthorized: ${detail ?? 'credentials refused'}`, 401, false, {
        cause,
        errorCodes: codes,
        method: 'GET',
        hint: 'check the user name and password',
      });

    let got: { res: Response; url: URL };
    try {
      got = await this.#getFrom(registry, '', '/v2/', {}, opts.signal);
    } catch (err) {
      if (err instanceof RegistryError && err.status === 401) {
        // The realm's own message ends the text: "GET <url>: 401 Unauthorized: <why>".
        const why = /^[A-Z]+ \S+: 401 Unauthorized(?:: (.*))?$/.exec(err.message)?.[1];
        throw unauthorized(why, err.errorCodes, err);
      }
      throw err;
    }
    const { res, url } = got;
    if (res.statusCode === 200) {
      await res.body.dump().catch(() => {});
      return;
    }
    if (res.statusCode === 401) {
      const { codes, detail } = await readErrorBody('GET', res);
      throw unauthorized(detail, codes);
    }
    throw await responseError('GET', url, res);
  }

  /** TLS options for an https host: its certs.d trust (system CAs included) and the extra CAs. */
  #tlsFor(host: string, extraCas: string | undefined): HostTLS {
    const tls = this.#certs.forHost(host);
    return extraCas === undefined ? tls : { ...tls, ca: [...tls.ca, extraCas] };
  }

  /** Closes every connection and forgets cached tokens. The client is unusable afterwards. */
  async close(): Promise<void> {
    this.#auth.clear();
    await this.#agent.close();
  }

  #allowsPlainHttp(host: string): boolean {
    return isLoopbackRegistry(host) || this.#insecure.has(host) || this.#insecure.has(host.replace(/:\d+$/, ''));
  }

  #origin(registry: string): URL {
    if (registry === defaultRegistry) return this.#hubOrigin;
    const host = registry;
    // certs.d is read here, so that a broken entry is its own error and
    // not a failed connection.
    const tls = this.#certs.has(host);
    const origin = new URL(`${this.#allowsPlainHttp(registry) && !tls ? 'http' : 'https'}://${host}`);
    if (origin.protocol === 'https:') this.#certs.forHost(origin.host);
    return origin;
  }

  #withAuthHint(err: RegistryError): RegistryError {
    if (err.status !== 401 && err.status !== 403) return err;
    return new RegistryError(err.message, err.status, err.temporary, {
      errorCodes: err.errorCodes,
      method: err.method,
      url: err.url,
      hint: 'the repository may not exist, or it may need credentials',
    });
  }

  /**
   * GETs path on ref's registry: attaches a cached token, answers a 401's
   * challenge and retries (once more when the registry refuses the new
   * token with an error such as insufficient_scope, never in a loop), and
   * follows up to 5 redirects. Authorization is
   * sent only to the registry's own origin and is dropped for good once a
   * redirect leaves it. Returns the final response, whatever its status.
   */
  async #get(
    e: Endpoint,
    ref: Reference,
    path: string,
    extra: Record<string, string>,
    signal?: AbortSignal,
  ): Promise<{ res: Response; url: URL }> {
    const url = new URL(path, e.origin);
    return this.#fetch({ url, registry: { name: e.key, scope: `repository:${ref.repository}:pull` }, extra, signal });
  }

  async #getFrom(
    registry: string,
    scope: string,
    path: string,
    extra: Record<string, string>,
    signal?: AbortSignal,
  ): Promise<{ res: Response; url: URL }> {
    const url = new URL(path, this.#origin(registry));
    return this.#fetch({ url, registry: { name: registry, scope }, extra, signal });
  }

  /**
   * Runs op against ref's registry. For docker.io, each configured mirror
   * that has not failed yet is tried first; a mirror that fails (any
   * error but an abort) is skipped for the rest of the client's life,
   * with a warning, and the next one, then docker.io itself, is tried.
   */
  async #viaMirrors<T>(ref: Reference, signal: AbortSignal | undefined, op: (e: Endpoint) => Promise<T>): Promise<T> {
    const upstream: Endpoint = { key: ref.registry, origin: this.#origin(ref.registry), mirror: false };
    if (ref.registry !== defaultRegistry) return op(upstream);
    const live = this.#mirrors.filter((m) => !this.#failedMirrors.has(m.origin.href));
    for (const e of [...live, upstream]) {
      if (!e.mirror) return op(e);
      try {
        return await op(e);
      } catch (err) {
        if (signal?.aborted) throw err;
        this.#failedMirrors.add(e.origin.href);
        this.#logger.warn(`mirror ${e.key}: ${(err as Error).message}; pulling from ${defaultRegistry} instead`);
      }
    }
    return op(upstream);
  }

  /**
   * The GET loop under #getFrom and #getForeign. With `registry`, url is on
   * that registry, which gets its Authorization; without, nothing is
   * authorized and redirects may go only to `hosts`.
   */
  async #fetch(o: {
    url: URL;
    registry?: { name: string; scope: string };
    hosts?: Set<string>;
    extra: Record<string, string>;
    signal?: AbortSignal;
  }): Promise<{ res: Response; url: URL }> {
    const { extra, signal } = o;
    const base = o.url;
    const registry = o.registry?.name ?? '';
    const scope = o.registry?.scope ?? '';
    let url = base;
    let mayAuthorize = o.registry !== undefined;
    // A 401 to a request without a token is answered once. A 401 refusing
    // a token is answered once too (re-challenged: a new token for what
    // the challenge asks), but after a fresh token only when the registry
    // says why it refused it (invalid_token, insufficient_scope).
    let answers = 0;
    let rechallenged = false;

    for (let hops = 0; ; ) {
      const onRegistry = mayAuthorize && url.origin === base.origin;
      const headers: Record<string, string> = { 'user-agent': this.#userAgent, ...extra };
      const authorization = onRegistry ? this.#auth.authorization(registry, scope) : undefined;
      if (authorization !== undefined) headers.authorization = authorization;

      const res = await this.#transport.send({
        method: 'GET',
        url,
        headers,
        signal,
        peer:
          o.registry === undefined
            ? `host ${url.host}`
            : url.origin === base.origin
              ? `registry ${registry}`
              : `blob storage ${url.host}`,
      });

      const bearerSent = authorization?.startsWith('Bearer ') === true;
      const mayAnswer = bearerSent ? !rechallenged && (answers === 0 || this.#auth.refusedToken(res)) : answers === 0;
      if (res.statusCode === 401 && onRegistry && mayAnswer) {
        answers++;
        if (bearerSent) rechallenged = true;
        await res.body.dump().catch(() => {});
        const answer = await this.#auth.answer(registry, scope, url, res, authorization, signal);
        if (answer === 'retry') continue;
        const why = answer === 'no-credentials' ? 'authentication required' : 'no supported authentication challenge';
        throw new RegistryError(`GET ${redactUrl(url)}: 401 Unauthorized: ${why}`, 401, false, {
          method: 'GET',
          url: redactUrl(url),
          hint:
            answer === 'no-credentials'
              ? `the registry wants credentials; log in with \`minidock login ${registry}\``
              : 'the registry wants credentials minidock does not have',
        });
      }

      if (redirectStatuses.has(res.statusCode)) {
        const location = headerOf(res, 'location');
        await res.body.dump().catch(() => {});
        const fail = (why: string): never => {
          throw new RegistryError(`GET ${redactUrl(url)}: ${res.statusCode} redirect: ${why}`, res.statusCode, false, {
            method: 'GET',
            url: redactUrl(url),
          });
        };
        if (++hops > maxRedirects) fail(`more than ${maxRedirects} redirects`);
        if (location === undefined) fail('no Location header');
        let next: URL;
        try {
          next = new URL(location!, url);
        } catch {
          return fail(`Location ${JSON.stringify(location)} is not a URL`);
        }
        if (next.protocol !== 'http:' && next.protocol !== 'https:') fail(`Location scheme ${next.protocol} is not http(s)`);
        if (url.protocol === 'https:' && next.protocol === 'http:') fail('refusing a downgrade from https to http');
        if (o.hosts !== undefined && !o.hosts.has(next.host)) fail(`refusing to leave the layer's hosts for ${next.host}`);
        next.username = '';
        next.password = '';
        if (next.origin !== url.origin) mayAuthorize = false;
        this.#logger.debug(`GET ${redactUrl(url)}: redirected to ${redactUrl(next)}`);
        url = next;
        continue;
      }

      return { res, url };
    }
  }
}
