/**
 * What every command needs: the store root, the logger, minidock's config.
 */
import { existsSync, readFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { MinidockError } from '../errors.js';
import type { Logger } from '../log.js';
import { contentLock, Store } from '../store/index.js';
import { stderrLogger } from './output.js';

export interface GlobalOptions {
  root?: string;
  debug?: boolean;
  verbose?: boolean;
  config?: string;
}

/** minidock's own configuration file (/etc/minidock/config.json by default). */
export interface MinidockConfig {
  'insecure-registries'?: string[];
  /** The certs.d root (default /etc/minidock/certs.d). */
  'certs-dir'?: string;
  /** Mirrors of docker.io, tried first, as Docker's daemon.json has them. */
  'registry-mirrors'?: string[];
}

export interface Context {
  logger: Logger;
  config: MinidockConfig;
  /** Docker's config.json, where registry credentials live: $DOCKER_CONFIG/config.json or ~/.docker/config.json. */
  dockerConfigPath: string;
  /** NODE_EXTRA_CA_CERTS when Node did not load it (see takeExtraCaCerts), for the registry client. */
  extraCaCertsFile?: string;
  store(): Promise<Store>;
}

/**
 * The registry client's settings: minidock's config (insecure registries,
 * certs.d, mirrors) and the extra CAs Node was not left to load itself.
 */
export function registryOptions(ctx: Pick<Context, 'config' | 'extraCaCertsFile'>): {
  insecureRegistries: string[];
  certsDir?: string;
  mirrors: string[];
  extraCaCertsFile?: string;
} {
  const { config } = ctx;
  return {
    insecureRegistries: config['insecure-registries'] ?? [],
    ...(config['certs-dir'] === undefined ? {} : { certsDir: config['certs-dir'] }),
    mirrors: config['registry-mirrors'] ?? [],
    ...(ctx.extraCaCertsFile === undefined ? {} : { extraCaCertsFile: ctx.extraCaCertsFile }),
  };
}

/** The checkout this file runs from, when it does (the repo root holds .git and store/README.md). */
function checkoutStore(): string | undefined {
  const repo = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..', '..');
  const store = join(repo, 'store');
  return existsSync(join(repo, '.git')) && existsSync(join(store, 'README.md')) ? store : undefined;
}

/**
 * The store root, absolute (the executor resolves paths from elsewhere):
 * --root, else MINIDOCK_ROOT, else the checkout's store/, else /var/lib/minidock.
 */
export function storeRoot(opts: GlobalOptions): string {
  return resolve(opts.root ?? process.env.MINIDOCK_ROOT ?? checkoutStore() ?? '/var/lib/minidock');
}

function readConfig(path: string | undefined): MinidockConfig {
  const file = path ?? process.env.MINIDOCK_CONFIG ?? '/etc/minidock/config.json';
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT' && path === undefined) return {};
    throw new MinidockError('ERR_CONFIG', `read config ${JSON.stringify(file)}: ${(err as Error).message}`);
  }
  try {
    return JSON.parse(text) as MinidockConfig;
  } catch (err) {
    throw new MinidockError('ERR_CONFIG', `parse config ${JSON.stringify(file)}: ${(err as Error).message}`);
  }
}

/** Docker's config.json: in $DOCKER_CONFIG when set, else in ~/.docker. */
export function dockerConfigPath(env: NodeJS.ProcessEnv = process.env): string {
  const dir = env.DOCKER_CONFIG !== undefined && env.DOCKER_CONFIG !== '' ? env.DOCKER_CONFIG : join(homedir(), '.docker');
  return join(dir, 'config.json');
}

/**
 * Node 20 reads the CAs named by NODE_EXTRA_CA_CERTS at start-up, before
 * any code runs (about 35 ms for a system bundle), though minidock needs
 * them only to talk TLS to a registry. bin/minidock.js therefore starts
 * Node without the variable and hands its value over as
 * MINIDOCK_EXTRA_CA_CERTS. This puts NODE_EXTRA_CA_CERTS back, for child
 * processes and `run -e`, and returns the file, which the registry client
 * then trusts itself. An empty value reads as unset, as Node reads it.
 */
export function takeExtraCaCerts(env: NodeJS.ProcessEnv): string | undefined {
  const handed = env.MINIDOCK_EXTRA_CA_CERTS;
  if (handed === undefined) return undefined;
  delete env.MINIDOCK_EXTRA_CA_CERTS;
  if (handed === '') return undefined;
  env.NODE_EXTRA_CA_CERTS = handed;
  return handed;
}

// Taken once, as this module loads: before any child process starts.
const extraCaCertsFile = takeExtraCaCerts(process.env);

/**
 * Says so when a command waits for others to finish with the store: a
 * deletion waits for every pull in progress. Waits for one layer's lock
 * (a pull waiting for another to unpack a shared layer) are shown with -v.
 */
function tellLockWaits(store: Store, logger: Logger): Store {
  store.onLockWait = (name) => {
    if (name === contentLock) logger.warn('waiting for other minidock commands using the store to finish');
    else logger.info(`waiting for lock ${name}, held by another minidock command`);
  };
  return store;
}

export function makeContext(opts: GlobalOptions): Context {
  let store: Promise<Store> | undefined;
  const logger = stderrLogger(opts.debug ? 'debug' : opts.verbose ? 'info' : 'warn');
  return {
    logger,
    config: readConfig(opts.config),
    dockerConfigPath: dockerConfigPath(),
    extraCaCertsFile,
    store: () => (store ??= Store.open(storeRoot(opts)).then((s) => tellLockWaits(s, logger))),
  };
}
