/**
 * Registry credentials kept the way Docker keeps them: in config.json
 * (`auths` entries holding base64 "user:password" or an identity token) or
 * in a credential helper (`credHelpers` per host, `credsStore` for all),
 * a program `docker-credential-<name>` speaking JSON on stdin and stdout.
 *
 * Nothing here reads the environment: the caller passes the config file's
 * path and the environment (PATH) that helpers run with.
 */
import { execFile } from 'node:child_process';
import { mkdir, open, readFile, rename, rm } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { MinidockError } from '../errors.js';
import { silentLogger, type Logger } from '../log.js';
import { defaultRegistry } from '../reference.js';
import type { Credentials, CredentialsLookup } from './auth.js';

/** The auths key Docker uses for docker.io. */
export const dockerHubServer = 'https://index.docker.io/v1/';

/** Options of a CredentialStore. */
export interface CredentialStoreOptions {
  /** The path of config.json (e.g. "$DOCKER_CONFIG/config.json"). */
  configPath: string;
  /** The environment credential helpers run with (their PATH finds them). */
  env?: NodeJS.ProcessEnv;
  /** How long a helper may run (default 10 s). */
  helperTimeoutMs?: number;
  logger?: Logger;
}

/** The parts of config.json minidock reads; other fields are kept as they are. */
interface ConfigFile {
  auths?: Record<string, { auth?: string; identitytoken?: string; [k: string]: unknown }>;
  credHelpers?: Record<string, string>;
  credsStore?: string;
  [k: string]: unknown;
}

const helperName = /^[A-Za-z0-9][A-Za-z0-9_.-]*$/;
// What helpers print when they hold nothing for a server (docker-credential-helpers'
// credentials.errCredentialsNotFoundMessage).
const notFoundText = /credentials not found/i;

/**
 * Returns the host a config.json key or a login SERVER argument names:
 * scheme and path dropped, "docker.io" for Docker Hub's names.
 */
export function normalizeServer(server: string): string {
  let s = server.trim().replace(/^[a-z][a-z0-9+.-]*:\/\//i, '');
  const slash = s.indexOf('/');
  if (slash >= 0) s = s.slice(0, slash);
  s = s.toLowerCase();
  if (s === 'index.docker.io' || s === 'registry-1.docker.io' || s === defaultRegistry) return defaultRegistry;
  return s;
}

/** The server URL helpers and auths keys use for host: Docker Hub's v1 URL, else the host. */
export function serverKey(host: string): string {
  return host === defaultRegistry ? dockerHubServer : host;
}

/**
 * Reads and writes registry credentials in a Docker config.json and its
 * credential helpers. Reads do not cache: each lookup reads the file again.
 * Errors never carry a secret: helper output is shown only when it is an
 * error message, and auth values never.
 */
export class CredentialStore {
  readonly #o: CredentialStoreOptions;
  readonly #logger: Logger;

  constructor(options: CredentialStoreOptions) {
    this.#o = options;
    this.#logger = options.logger ?? silentLogger;
  }

  /** The path of config.json. */
  get configPath(): string {
    return this.#o.configPath;
  }

  /** This store as a RegistryClientOptions.credentials hook. */
  lookup(): CredentialsLookup {
    return (host) => this.get(host);
  }

  /**
   * Returns the credentials for host ("127.0.0.1:5000", "docker.io"), or
   * undefined. A helper named for the host in credHelpers, else credsStore,
   * is asked first; when it holds nothing, an auths entry is used. A missing
   * config.json means no credentials.
   */
  async get(host: string): Promise<Credentials | undefined> {
    const config = await this.#read();
    const want = normalizeServer(host);
    const helper = this.#helperFor(config, want);
    if (helper !== undefined) {
      const got = await this.#helperGet(helper, want);
      if (got !== undefined) return got;
    }
    const key = findKey(config.auths, want);
    if (key === undefined) return undefined;
    return decodeEntry(config.auths![key]!, key, this.#o.configPath);
  }

  /**
   * Stores creds for host: in its helper when one is configured, else as an
   * auths entry in config.json (replacing any other key naming the same
   * host). The file is written atomically with mode 0600; fields minidock
   * does not know are kept. Returns where the credentials went: "file" or
   * the helper's name.
   */
  async store(host: string, creds: Credentials): Promise<string> {
    const config = await this.#read();
    const want = normalizeServer(host);
    const helper = this.#helperFor(config, want);
    if (helper !== undefined) {
      const payload = {
        ServerURL: serverKey(want),
        Username: creds.identityToken !== undefined ? '<token>' : creds.username,
        Secret: creds.identityToken ?? creds.password,
      };
      await this.#runHelper(helper, 'store', JSON.stringify(payload), want);
      return helper;
    }

    const auths = { ...(config.auths ?? {}) };
    for (const k of Object.keys(auths)) if (normalizeServer(k) === want) delete auths[k];
    auths[serverKey(want)] =
      creds.identityToken !== undefined
        ? { identitytoken: creds.identityToken }
        : { auth: Buffer.from(`${creds.username}:${creds.password}`, 'utf8').toString('base64') };
    await this.#write({ ...config, auths });
    return 'file';
  }

  /**
   * Removes host's credentials: from its helper when one is configured and
   * from every auths key naming host. Returns false when there were none
   * to remove. Idempotent.
   */
  async erase(host: string): Promise<boolean> {
    const config = await this.#read();
    const want = normalizeServer(host);
    let removed = false;
    const helper = this.#helperFor(config, want);
    if (helper !== undefined) removed = await this.#runHelper(helper, 'erase', serverKey(want), want).then(
      () => true,
      (err: unknown) => {
        if (err instanceof MinidockError && err.code === 'ERR_CREDENTIALS_NOT_FOUND') return false;
        throw err;
      },
    );

    const auths = config.auths ?? {};
    const keys = Object.keys(auths).filter((k) => normalizeServer(k) === want);
    if (keys.length > 0) {
      const rest = { ...auths };
      for (const k of keys) delete rest[k];
      await this.#write({ ...config, auths: rest });
      removed = true;
    }
    return removed;
  }

  #helperFor(config: ConfigFile, host: string): string | undefined {
    const perHost = config.credHelpers ?? {};
    const key = Object.keys(perHost).find((k) => normalizeServer(k) === host);
    const name = key !== undefined ? perHost[key] : config.credsStore;
    if (name === undefined || name === '') return undefined;
    if (typeof name !== 'string' || !helperName.test(name)) {
      throw new MinidockError(
        'ERR_CONFIG',
        `read ${JSON.stringify(this.#o.configPath)}: credential helper name ${JSON.stringify(name)} is not valid`,
      );
    }
    return name;
  }

  async #helperGet(helper: string, host: string): Promise<Credentials | undefined> {
    let out: string;
    try {
      out = await this.#runHelper(helper, 'get', serverKey(host), host);
    } catch (err) {
      if (err instanceof MinidockError && err.code === 'ERR_CREDENTIALS_NOT_FOUND') return undefined;
      throw err;
    }
    const op = `get credentials for ${host} from docker-credential-${helper}`;
    let body: { Username?: unknown; Secret?: unknown };
    try {
      body = JSON.parse(out);
    } catch {
      // The output may hold the secret: it is not shown.
      throw new MinidockError('ERR_CREDENTIAL_HELPER', `${op}: output is not JSON`);
    }
    const { Username: user, Secret: secret } = body ?? {};
    if (typeof user !== 'string' || typeof secret !== 'string') {
      throw new MinidockError('ERR_CREDENTIAL_HELPER', `${op}: output lacks Username or Secret`);
    }
    if (secret === '') return undefined;
    this.#logger.debug(`credentials for ${host} from docker-credential-${helper}`);
    // Username "<token>" marks the secret as an identity token.
    if (user === '<token>') return { username: '', password: '', identityToken: secret };
    return { username: user, password: secret };
  }

  /**
   * Runs `docker-credential-<helper> <action>` with input on stdin, within
   * the timeout, and returns its stdout. "credentials not found" becomes
   * ERR_CREDENTIALS_NOT_FOUND.
   */
  #runHelper(helper: string, action: 'get' | 'store' | 'erase', input: string, host: string): Promise<string> {
    const program = `docker-credential-${helper}`;
    const op = `${action} credentials for ${host} with ${program}`;
    return new Promise((resolve, reject) => {
      const child = execFile(
        program,
        [action],
        {
          env: this.#o.env ?? {},
          timeout: this.#o.helperTimeoutMs ?? 10_000,
          killSignal: 'SIGKILL',
          maxBuffer: 1024 * 1024,
          encoding: 'utf8',
        },
        (err, stdout, stderr) => {
          if (err === null) {
            resolve(stdout);
            return;
          }
          const e = err as NodeJS.ErrnoException & { killed?: boolean; signal?: string };
          if (e.code === 'ENOENT') {
            reject(new MinidockError('ERR_CREDENTIAL_HELPER', `${op}: ${program} not found`, {
              hint: `install ${program} on PATH, or remove it from ${this.#o.configPath}`,
            }));
            return;
          }
          if (e.killed || e.signal !== undefined && e.signal !== null) {
            reject(new MinidockError('ERR_CREDENTIAL_HELPER', `${op}: no answer within the time limit`));
            return;
          }
          // On failure a helper prints only an error message (on stdout by
          // the helpers' convention); that, and no more than a line of it, is shown.
          const text = `${stdout}\n${stderr}`.trim();
          if (notFoundText.test(text)) {
            reject(new MinidockError('ERR_CREDENTIALS_NOT_FOUND', `${op}: credentials not found`));
            return;
          }
          const line = (text.split('\n')[0] ?? '').replace(/[\x00-\x1f\x7f]/g, ' ').slice(0, 200);
          reject(new MinidockError('ERR_CREDENTIAL_HELPER', `${op}: exit status ${e.code}${line ? `: ${line}` : ''}`));
        },
      );
      child.stdin?.on('error', () => {});
      child.stdin?.end(input);
    });
  }

  async #read(): Promise<ConfigFile> {
    const path = this.#o.configPath;
    let text: string;
    try {
      text = await readFile(path, 'utf8');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return {};
      throw new MinidockError('ERR_CONFIG', `read ${JSON.stringify(path)}: ${(err as Error).message}`, { cause: err });
    }
    if (text.trim() === '') return {};
    let parsed: unknown;
    try {
      parsed = JSON.parse(text);
    } catch (err) {
      // JSON.parse quotes the text near the error, which may be a secret.
      throw new MinidockError('ERR_CONFIG', `parse ${JSON.stringify(path)}: not valid JSON`);
    }
    if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) {
      throw new MinidockError('ERR_CONFIG', `parse ${JSON.stringify(path)}: not a JSON object`);
    }
    const config = parsed as ConfigFile;
    if (config.auths !== undefined && (typeof config.auths !== 'object' || config.auths === null)) {
      throw new MinidockError('ERR_CONFIG', `parse ${JSON.stringify(path)}: "auths" is not an object`);
    }
    return config;
  }

  /** Writes config to a temporary file beside config.json, then renames it into place. */
  async #write(config: ConfigFile): Promise<void> {
    const path = this.#o.configPath;
    const op = `write ${JSON.stringify(path)}`;
    const tmp = join(dirname(path), `.config.json.${randomBytes(6).toString('hex')}.tmp`);
    try {
      await mkdir(dirname(path), { recursive: true, mode: 0o700 });
      const fh = await open(tmp, 'wx', 0o600);
      try {
        await fh.writeFile(`${JSON.stringify(config, null, '\t')}\n`);
        await fh.sync();
      } finally {
        await fh.close();
      }
      await rename(tmp, path);
    } catch (err) {
      await rm(tmp, { force: true });
      throw new MinidockError('ERR_CONFIG', `${op}: ${(err as Error).message}`, { cause: err });
    }
  }
}

function findKey(auths: ConfigFile['auths'], host: string): string | undefined {
  if (auths === undefined) return undefined;
  const keys = Object.keys(auths).filter((k) => normalizeServer(k) === host);
  // Prefer an entry that holds something (Docker leaves {} beside helpers).
  return keys.find((k) => auths[k]?.auth || auths[k]?.identitytoken) ?? keys[0];
}

function decodeEntry(
  entry: { auth?: unknown; identitytoken?: unknown },
  key: string,
  path: string,
): Credentials | undefined {
  if (typeof entry !== 'object' || entry === null) return undefined;
  const bad = (why: string) =>
    new MinidockError('ERR_CONFIG', `parse ${JSON.stringify(path)}: auths entry ${JSON.stringify(key)}: ${why}`);
  if (typeof entry.identitytoken === 'string' && entry.identitytoken !== '') {
    let username = '';
    if (typeof entry.auth === 'string' && entry.auth !== '') {
      username = Buffer.from(entry.auth, 'base64').toString('utf8').split(':')[0] ?? '';
    }
    return { username, password: '', identityToken: entry.identitytoken };
  }
  if (entry.auth === undefined || entry.auth === '') return undefined;
  if (typeof entry.auth !== 'string' || !/^[A-Za-z0-9+/]*={0,2}$/.test(entry.auth.trim())) {
    throw bad('"auth" is not base64');
  }
  const plain = Buffer.from(entry.auth.trim(), 'base64').toString('utf8');
  const colon = plain.indexOf(':');
  if (colon <= 0) throw bad('"auth" does not decode to user:password');
  return { username: plain.slice(0, colon), password: plain.slice(colon + 1) };
}
