/**
 * Registry authentication: answering a 401's challenge with a bearer token
 * from the token realm (Docker's token protocol) or with Basic credentials,
 * and caching what was obtained per registry and scope.
 *
 * A token is only ever attached to requests to the registry it was issued
 * for; the realm gets only the user's own credentials (if any), never the
 * registry's Authorization header.
 */
import { MinidockError, RegistryError } from '../errors.js';
import type { Logger } from '../log.js';
import { parseChallenges, type Challenge } from './challenge.js';
import { readCapped, redactUrl, responseError, type Transport } from './transport.js';

/** A user name and password for a registry. */
export interface Credentials {
  username: string;
  password: string;
  /**
   * An OAuth2 refresh token (Docker's "identitytoken"). When set, token
   * realms get it in an OAuth2 POST instead of Basic credentials, and a
   * Basic challenge is not answered.
   */
  identityToken?: string;
}

/**
 * Looks up the credentials for a registry host ("127.0.0.1:5000", or
 * "docker.io"), or undefined. It may be asynchronous (a credential helper).
 */
export type CredentialsLookup = (host: string) => Credentials | undefined | Promise<Credentials | undefined>;

/**
 * What answer() made of a 401: "retry" with authorization(); "no-credentials"
 * when the challenge is Basic and no credentials are known; "unsupported"
 * when no challenge is one minidock speaks.
 */
export type AnswerResult = 'retry' | 'no-credentials' | 'unsupported';

interface CachedToken {
  value: string;
  expiresAt: number;
}

// Tokens that name no lifetime are valid for 60 s (distribution's token spec).
const defaultTokenSeconds = 60;

export interface AuthenticatorOptions {
  transport: Transport;
  logger: Logger;
  userAgent: string;
  credentials?: CredentialsLookup;
  /** True when plain http to host is allowed (loopback or configured insecure). */
  allowsPlainHttp: (host: string) => boolean;
  /** The clock tokens expire by; default Date.now. */
  now?: () => number;
}

/**
 * Holds the tokens and Basic credentials obtained for each registry. Not
 * persistent: the cache lives as long as the RegistryClient that owns it.
 */
export class Authenticator {
  readonly #o: AuthenticatorOptions;
  readonly #tokens = new Map<string, CachedToken>();
  readonly #basic = new Map<string, string>();
  // Token requests in flight, so that concurrent 401s share one.
  readonly #pending = new Map<string, Promise<void>>();

  constructor(options: AuthenticatorOptions) {
    this.#o = options;
  }

  #now(): number {
    return (this.#o.now ?? Date.now)();
  }

  /** Returns the Authorization value to send to registry for scope, if one is known. */
  authorization(registry: string, scope: string): string | undefined {
    const key = `${registry} ${scope}`;
    const t = this.#tokens.get(key);
    if (t !== undefined) {
      if (this.#now() < t.expiresAt) return `Bearer ${t.value}`;
      this.#tokens.delete(key);
    }
    return this.#basic.get(registry);
  }

  /**
   * Answers the challenge of a 401 from registry (whose request URL was url)
   * by obtaining a token or picking Basic credentials. Returns true when the
   * request is worth retrying with authorization(registry, scope) (see
   * AnswerResult). scope "" asks for a token with no repository scope (as
   * login does). `sent` is the Authorization the refused request
   * carried: when a different one has been cached since (a concurrent
   * request got it), that one is used without asking again.
   */
  async answer(
    registry: string,
    scope: string,
    url: URL,
    res: { headers: Record<string, unknown> },
    sent: string | undefined,
    signal?: AbortSignal,
  ): Promise<AnswerResult> {
    const now = this.authorization(registry, scope);
    if (now !== undefined && now !== sent) return 'retry';

    const header = res.headers['www-authenticate'];
    const values = Array.isArray(header) ? header : header === undefined ? [] : [String(header)];
    const challenges: Challenge[] = [];
    for (const v of values) {
      try {
        challenges.push(...parseChallenges(v));
      } catch (err) {
        throw new RegistryError(`GET ${redactUrl(url)}: 401 Unauthorized: ${(err as Error).message}`, 401, false, {
          cause: err,
          method: 'GET',
          url: redactUrl(url),
        });
      }
    }

    const bearer = challenges.find((c) => c.scheme === 'bearer' && c.params.realm !== undefined);
    if (bearer !== undefined) {
      const key = `${registry} ${scope}`;
      let pending = this.#pending.get(key);
      if (pending === undefined) {
        pending = this.#fetchToken(registry, scope, bearer, signal).finally(() => this.#pending.delete(key));
        this.#pending.set(key, pending);
      }
      await pending;
      return 'retry';
    }
    const basic = challenges.find((c) => c.scheme === 'basic');
    if (basic === undefined) return 'unsupported';
    const creds = await this.#credentials(registry);
    if (creds === undefined || creds.identityToken !== undefined) return 'no-credentials';
    if (url.protocol === 'http:' && !this.#o.allowsPlainHttp(url.host)) {
      throw new MinidockError('ERR_INSECURE', `authenticate to ${registry}: refusing to send credentials over plain http`);
    }
    this.#basic.set(registry, basicHeader(creds));
    return 'retry';
  }

  /**
   * True when a 401 says that the bearer token it refused is bad or too
   * narrow (RFC 6750's error="invalid_token" or "insufficient_scope"), so
   * that a new token is worth one more try.
   */
  refusedToken(res: { headers: Record<string, unknown> }): boolean {
    const header = res.headers['www-authenticate'];
    const values = Array.isArray(header) ? header : header === undefined ? [] : [String(header)];
    for (const v of values) {
      try {
        if (parseChallenges(v).some((c) => c.scheme === 'bearer' && c.params.error !== undefined)) return true;
      } catch {
        // A broken header is reported by answer(), not here.
      }
    }
    return false;
  }

  /** Forgets every token and credential obtained. */
  clear(): void {
    this.#tokens.clear();
    this.#basic.clear();
  }

  async #credentials(registry: string): Promise<Credentials | undefined> {
    return this.#o.credentials === undefined ? undefined : await this.#o.credentials(registry);
  }

  async #fetchToken(registry: string, scope: string, c: Challenge, signal?: AbortSignal): Promise<void> {
    const op = `get token for ${registry}`;
    let realm: URL;
    try {
      realm = new URL(c.params.realm!);
    } catch {
      throw new MinidockError('ERR_BAD_CHALLENGE', `${op}: realm ${JSON.stringify(c.params.realm)} is not a URL`);
    }
    if (realm.protocol !== 'https:' && realm.protocol !== 'http:') {
      throw new MinidockError('ERR_BAD_CHALLENGE', `${op}: realm ${JSON.stringify(redactUrl(realm))} is not http(s)`);
    }
    // Userinfo in the realm is not ours to send.
    realm.username = '';
    realm.password = '';

    // The challenge may name the scopes it wants (space-separated); ask for
    // those and for the one this request needs.
    const scopes = new Set((c.params.scope ?? '').split(' ').filter((s) => s !== ''));
    if (scope !== '') scopes.add(scope);

    const headers: Record<string, string> = { 'user-agent': this.#o.userAgent, accept: 'application/json' };
    const creds = await this.#credentials(registry);
    if (creds !== undefined && realm.protocol === 'http:' && !this.#o.allowsPlainHttp(realm.host)) {
      throw new MinidockError('ERR_INSECURE', `${op}: refusing to send credentials over plain http to ${realm.host}`);
    }

    let method: 'GET' | 'POST' = 'GET';
    let form: string | undefined;
    if (creds?.identityToken !== undefined) {
      // An identity token is an OAuth2 refresh token: it is exchanged in a
      // form POST to the realm (distribution's docs/spec/auth/oauth.md).
      method = 'POST';
      const params = new URLSearchParams({
        grant_type: 'refresh_token',
        refresh_token: creds.identityToken,
        client_id: this.#o.userAgent,
      });
      if (c.params.service !== undefined) params.set('service', c.params.service);
      if (scopes.size > 0) params.set('scope', [...scopes].join(' '));
      form = params.toString();
      headers['content-type'] = 'application/x-www-form-urlencoded';
    } else {
      if (c.params.service !== undefined) realm.searchParams.set('service', c.params.service);
      for (const s of scopes) realm.searchParams.append('scope', s);
      if (creds !== undefined) headers.authorization = basicHeader(creds);
    }

    const res = await this.#o.transport.send({
      method,
      url: realm,
      headers,
      body: form,
      signal,
      peer: `token service ${realm.host}`,
    });
    if (res.statusCode !== 200) throw await responseError(method, realm, res);

    const raw = await readCapped(res, 1024 * 1024, `token from ${realm.host}`);
    let body: { token?: unknown; access_token?: unknown; expires_in?: unknown };
    try {
      body = JSON.parse(raw.toString('utf8'));
    } catch {
      throw new MinidockError('ERR_BAD_TOKEN', `${op}: answer from ${realm.host} is not JSON`);
    }
    const token = typeof body?.token === 'string' && body.token !== '' ? body.token : body?.access_token;
    if (typeof token !== 'string' || !/^[\x21-\x7e]+$/.test(token)) {
      throw new MinidockError('ERR_BAD_TOKEN', `${op}: answer from ${realm.host} holds no usable token`);
    }
    const seconds =
      typeof body.expires_in === 'number' && body.expires_in > 0 ? body.expires_in : defaultTokenSeconds;
    // Renew a little early so a token does not expire in flight.
    this.#tokens.set(`${registry} ${scope}`, { value: token, expiresAt: this.#now() + seconds * 900 });
    this.#o.logger.debug(`got token for ${registry} (${[...scopes].join(' ') || 'no scope'}), valid ${seconds} s`);
  }
}

function basicHeader(c: Credentials): string {
  return `Basic ${Buffer.from(`${c.username}:${c.password}`, 'utf8').toString('base64')}`;
}
