/**
 * The HTTP edge of the registry client: one request with bounded retries,
 * connection errors turned into one-line messages, registry error bodies
 * turned into RegistryError, and URLs redacted wherever they are shown.
 */
import { STATUS_CODES } from 'node:http';
import { setTimeout as sleep } from 'node:timers/promises';
import type { Agent, Dispatcher } from 'undici';
import { MinidockError, RegistryError, messageOf } from '../errors.js';
import type { Logger } from '../log.js';

/** How often and how long the transport retries 429, 5xx and dropped connections. */
export interface RetryOptions {
  /** Attempts in all, the first included. Default 3. */
  tries?: number;
  /** Delay before the first retry; it doubles for each later one. Default 250 ms. */
  baseDelayMs?: number;
  /** Upper bound on a backoff delay. Default 10 s. */
  maxDelayMs?: number;
  /**
   * The longest Retry-After honoured. A server asking for a longer wait is
   * not retried: its answer goes back to the caller. Default 60 s.
   */
  maxRetryAfterMs?: number;
}

export type Response = Dispatcher.ResponseData;

export interface SendOptions {
  method: 'GET' | 'HEAD' | 'POST';
  url: URL;
  headers: Record<string, string>;
  /** A request body (a token form); never logged. */
  body?: string;
  signal?: AbortSignal;
  /**
   * Names the far end in messages: "registry 127.0.0.1:5000", "token
   * service auth.example", "blob storage …"; its last word is the host.
   */
  peer: string;
}

// Query parameters whose values are secrets (pre-signed storage URLs carry
// their signature and credential in the query).
const secretParam = /sig|signature|token|credential|password|secret|key|auth/i;

/** Returns url as text with userinfo and secret-looking query values replaced by "REDACTED". */
export function redactUrl(url: URL | string): string {
  const u = new URL(url);
  if (u.username !== '') u.username = 'REDACTED';
  if (u.password !== '') u.password = 'REDACTED';
  for (const name of [...new Set(u.searchParams.keys())]) {
    if (secretParam.test(name)) u.searchParams.set(name, 'REDACTED');
  }
  return u.toString();
}

/** Returns the first value of a response header, or undefined. */
export function headerOf(res: Response, name: string): string | undefined {
  const v = res.headers[name.toLowerCase()];
  return Array.isArray(v) ? v[0] : v;
}

/** Returns status as "404 Not Found". */
export function statusLine(res: Response): string {
  const text = res.statusText || STATUS_CODES[res.statusCode] || '';
  return text === '' ? String(res.statusCode) : `${res.statusCode} ${text}`;
}

/**
 * Abandons a response body: the transfer is aborted and its connection
 * closed. undici reports the abort as an 'error' event, which is expected
 * here and swallowed.
 */
export function discardBody(res: Response): void {
  res.body.on('error', () => {});
  res.body.destroy();
}

/**
 * Reads a response body whole, refusing (and aborting the transfer) once it
 * passes limit bytes. A Content-Length over the limit is refused before any
 * byte is read.
 */
export async function readCapped(
  res: Response,
  limit: number,
  what: string,
  deadlineMs = smallBodyDeadlineMs,
): Promise<Buffer> {
  const tooBig = (): MinidockError =>
    new MinidockError('ERR_TOO_LARGE', `read ${what}: larger than the ${formatSize(limit)} limit`);
  const declared = Number(headerOf(res, 'content-length'));
  if (Number.isFinite(declared) && declared > limit) {
    discardBody(res);
    throw tooBig();
  }

  // A body trickled a byte at a time never trips undici's idle timeout;
  // small bodies also get a deadline for the whole read.
  const body = res.body as unknown as NodeJS.ReadableStream & { destroy(err?: Error): void };
  const deadline = setTimeout(() => {
    body.destroy(new MinidockError('ERR_TIMEOUT', `read ${what}: not complete after ${deadlineMs / 1000} s`));
  }, deadlineMs);
  deadline.unref();

  const chunks: Buffer[] = [];
  let total = 0;
  try {
    for await (const chunk of body as AsyncIterable<Buffer>) {
      total += chunk.length;
      if (total > limit) {
        discardBody(res);
        throw tooBig();
      }
      chunks.push(chunk);
    }
  } catch (err) {
    if (err instanceof MinidockError) throw err;
    throw new MinidockError('ERR_REGISTRY', `read ${what}: ${(err as Error).message}`, { cause: err });
  } finally {
    clearTimeout(deadline);
  }
  return Buffer.concat(chunks, total);
}

/** How long a small body (manifest, config, token) may take to arrive in full. */
export const smallBodyDeadlineMs = 60_000;

function formatSize(n: number): string {
  return n % (1024 * 1024) === 0 ? `${n / (1024 * 1024)} MiB` : `${n} bytes`;
}

/** Parses Retry-After (delta-seconds or an HTTP date) into milliseconds. */
export function parseRetryAfter(value: string | undefined, now = Date.now()): number | undefined {
  if (value === undefined) return undefined;
  const v = value.trim();
  if (/^\d+$/.test(v)) return Number(v) * 1000;
  const at = Date.parse(v);
  return Number.isNaN(at) ? undefined : Math.max(0, at - now);
}

const connectCauses: Record<string, { text: string; temporary: boolean }> = {
  ECONNREFUSED: { text: 'connection refused', temporary: false },
  ENOTFOUND: { text: 'host not found', temporary: false },
  EAI_AGAIN: { text: 'host name lookup failed', temporary: true },
  EHOSTUNREACH: { text: 'host unreachable', temporary: false },
  ENETUNREACH: { text: 'network unreachable', temporary: false },
  ECONNRESET: { text: 'connection reset', temporary: true },
  EPIPE: { text: 'connection reset', temporary: true },
  ETIMEDOUT: { text: 'connection timed out', temporary: true },
  UND_ERR_CONNECT_TIMEOUT: { text: 'connection timed out', temporary: true },
  UND_ERR_HEADERS_TIMEOUT: { text: 'timed out waiting for response headers', temporary: true },
  UND_ERR_SOCKET: { text: 'connection closed unexpectedly', temporary: true },
  UND_ERR_CLOSED: { text: 'connection closed unexpectedly', temporary: true },
};

// Failures while a body streams that a new request may get past.
const bodyCauses = new Set(['UND_ERR_BODY_TIMEOUT', 'UND_ERR_RES_CONTENT_LENGTH_MISMATCH', 'UND_ERR_ABORTED_BY_PEER']);

/**
 * True when err is a dropped or stalled connection (reset, closed, timed
 * out), one a new request may get past: what resuming a download is for.
 */
export function isTemporaryNetworkError(err: unknown): boolean {
  if (err instanceof RegistryError) return err.temporary;
  const e = err as { code?: string; cause?: { code?: string } };
  const code = e?.code ?? e?.cause?.code ?? '';
  return connectCauses[code]?.temporary === true || bodyCauses.has(code);
}

function isAbort(err: unknown, signal?: AbortSignal): boolean {
  const e = err as { name?: string; code?: string };
  return signal?.aborted === true || e?.name === 'AbortError' || e?.code === 'UND_ERR_ABORTED';
}

/** Turns an error thrown while connecting or talking to peer into a one-line RegistryError. */
export function connectionError(peer: string, err: unknown): RegistryError {
  const e = err as { code?: string; cause?: { code?: string } };
  const code = e?.code ?? e?.cause?.code ?? '';
  const known = connectCauses[code];
  let text = known?.text;
  const tls = text === undefined && /CERT|SSL|TLS|SELF_SIGNED|UNABLE_TO_|VERIFY/.test(code);
  if (tls) text = `tls: ${messageOf(err).toLowerCase()}`;
  const host = peer.split(' ').at(-1)!;
  let hint: string | undefined;
  if (known?.text === 'connection refused' && peer.startsWith('registry ')) hint = `is a registry listening at ${host}?`;
  if (tls) hint = `a registry with its own CA needs it in certs.d/${host}/ (a .crt file), with a client certificate there if it asks for one`;
  return new RegistryError(`connect to ${peer}: ${text ?? messageOf(err)}`, undefined, known?.temporary ?? false, {
    cause: err,
    hint,
  });
}

/**
 * Builds the RegistryError for a non-success answer, reading at most 64 KiB
 * of its body for the registry's {"errors":[{code,message}]} diagnostics.
 * The message reads "GET <url>: 404 Not Found: manifest unknown".
 */
export async function responseError(method: string, url: URL, res: Response): Promise<RegistryError> {
  const { codes, detail } = await readErrorBody(method, res);
  const shown = redactUrl(url);
  const temporary = res.statusCode === 429 || res.statusCode >= 500;
  const message = `${method} ${shown}: ${statusLine(res)}${detail ? `: ${detail}` : ''}`;
  return new RegistryError(message, res.statusCode, temporary, { errorCodes: codes, method, url: shown });
}

/**
 * Reads at most 64 KiB of a non-success answer's body and returns the
 * registry's error codes and their messages on one line (at most 300
 * characters), or the start of a text body.
 */
export async function readErrorBody(method: string, res: Response): Promise<{ codes: string[]; detail?: string }> {
  let raw: Buffer | undefined;
  if (method !== 'HEAD') {
    try {
      raw = await readCapped(res, 64 * 1024, 'error body');
    } catch {
      raw = undefined;
    }
  } else {
    await res.body.dump().catch(() => {});
  }

  const codes: string[] = [];
  let detail: string | undefined;
  if (raw !== undefined && raw.length > 0) {
    const text = raw.toString('utf8');
    try {
      const body = JSON.parse(text) as { errors?: { code?: unknown; message?: unknown }[] };
      const messages: string[] = [];
      for (const e of Array.isArray(body.errors) ? body.errors : []) {
        if (typeof e?.code === 'string') codes.push(e.code);
        if (typeof e?.message === 'string' && e.message !== '') messages.push(e.message);
        else if (typeof e?.code === 'string') messages.push(e.code.toLowerCase().replaceAll('_', ' '));
      }
      if (messages.length > 0) detail = messages.join('; ');
    } catch {
      // Not JSON: show the start of the text, on one line.
      const ct = headerOf(res, 'content-type') ?? '';
      if (ct === '' || ct.startsWith('text/')) detail = text;
    }
  } else if (method === 'HEAD') {
    detail = 'no body in answer to HEAD';
  }
  if (detail !== undefined) {
    detail = detail.replace(/[\x00-\x1f\x7f]+/g, ' ').trim();
    if (detail.length > 300) detail = `${detail.slice(0, 300)}…`;
  }
  return { codes, detail };
}

/** Formats a delay for people: "12s", "0.25s". */
export function formatDelay(ms: number): string {
  return `${Number((ms / 1000).toFixed(ms < 10_000 ? 2 : 0))}s`;
}

/**
 * Sends requests through one undici Agent (a keep-alive Pool per origin),
 * retrying 429, 5xx and dropped connections with exponential backoff, at
 * most `tries` attempts in all, honouring Retry-After up to
 * `maxRetryAfterMs`. Each retry is announced with a warning ("rate limited
 * by docker.io, retrying in 12s"). Other statuses, 4xx included, are
 * returned to the caller as they are.
 */
export class Transport {
  readonly #agent: Agent;
  readonly #logger: Logger;
  readonly #tries: number;
  readonly #baseDelayMs: number;
  readonly #maxDelayMs: number;
  readonly #maxRetryAfterMs: number;

  constructor(agent: Agent, logger: Logger, retry: RetryOptions = {}) {
    this.#agent = agent;
    this.#logger = logger;
    this.#tries = Math.max(1, retry.tries ?? 3);
    this.#baseDelayMs = retry.baseDelayMs ?? 250;
    this.#maxDelayMs = retry.maxDelayMs ?? 10_000;
    this.#maxRetryAfterMs = retry.maxRetryAfterMs ?? 60_000;
  }

  /** Sends one request (with retries). The caller must consume or destroy the body. */
  async send(opts: SendOptions): Promise<Response> {
    const { method, url, headers, body, signal } = opts;
    const shown = redactUrl(url);
    const host = opts.peer.split(' ').at(-1)!;

    for (let attempt = 1; ; attempt++) {
      let res: Response;
      try {
        res = await this.#agent.request({
          origin: url.origin,
          path: `${url.pathname}${url.search}`,
          method,
          headers,
          body,
          signal,
        });
      } catch (err) {
        if (isAbort(err, signal)) throw err;
        const e = connectionError(opts.peer, err);
        this.#logger.debug(`${method} ${shown}: ${e.message}`);
        if (e.temporary && attempt < this.#tries) {
          await this.#pause(this.#backoff(attempt), `${e.message.replace(/^connect to /, '')}`, signal);
          continue;
        }
        throw e;
      }

      this.#logger.debug(`${method} ${shown}: ${statusLine(res)}`);
      const retryable = res.statusCode === 429 || res.statusCode >= 500;
      const after = parseRetryAfter(headerOf(res, 'retry-after'));
      if (retryable && attempt < this.#tries && (after === undefined || after <= this.#maxRetryAfterMs)) {
        await res.body.dump().catch(() => {});
        const why = res.statusCode === 429 ? `rate limited by ${host}` : `${host} answered ${statusLine(res)}`;
        await this.#pause(after ?? this.#backoff(attempt), why, signal);
        continue;
      }
      return res;
    }
  }

  #backoff(attempt: number): number {
    return Math.min(this.#baseDelayMs * 2 ** (attempt - 1), this.#maxDelayMs);
  }

  async #pause(ms: number, why: string, signal?: AbortSignal): Promise<void> {
    this.#logger.warn(`${why}, retrying in ${formatDelay(ms)}`);
    await sleep(ms, undefined, { signal });
  }
}
