/**
 * A real registry for tests: Debian's docker-registry (the CNCF
 * distribution registry) on 127.0.0.1 at a free port, with its storage in a
 * temporary directory, and skopeo to push OCI layouts into it.
 *
 * It can require htpasswd Basic auth, or bearer tokens from a token issuer
 * the test runs (test/helpers/token-issuer.ts), and can serve TLS, with
 * client certificates required when given a client CA.
 *
 * Limitations: the htpasswd mode has one user.
 */
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { connect, createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { promisify } from 'node:util';
import { MinidockError, messageOf } from '../../src/errors.js';

const execFileAsync = promisify(execFile);

/** The registry binary of Debian's docker-registry package. */
export const registryBinary = '/usr/bin/docker-registry';

export interface StartRegistryOptions {
  /** 'htpasswd': require HTTP basic auth for every request. */
  auth?: 'htpasswd';
  /**
   * Require bearer tokens signed by this issuer (the registry's `auth:
   * token:`). `credentials` are what the issuer accepts; pushes use them.
   */
  token?: {
    realm: string;
    service: string;
    issuer: string;
    certPath: string;
    credentials?: { username: string; password: string };
  };
  /**
   * Serve https with this certificate and key. With clientCAPath, every
   * connection must present a client certificate signed by it. certDir is
   * a directory in Docker's certs.d layout (ca.crt, client.cert,
   * client.key) that pushes use.
   */
  tls?: { certPath: string; keyPath: string; clientCAPath?: string; certDir: string };
  /** Listen on this port instead of a free one. */
  port?: number;
}

export interface PushOptions {
  /** Push every manifest of an index (skopeo --all), not only the host's. */
  all?: boolean;
  /** The layout's tag to copy; "latest" when absent. */
  sourceTag?: string;
}

/** A running registry; stop() it in the test's after() hook. */
export interface TestRegistry {
  /** "127.0.0.1:PORT", as used in image references. */
  host: string;
  /** "http://127.0.0.1:PORT" (https with tls). */
  url: string;
  /** The temporary directory holding config.yml and the registry's storage. */
  dir: string;
  /** The pid of the docker-registry process. */
  pid: number;
  /** Set when started with auth 'htpasswd' or with token credentials. */
  credentials?: { username: string; password: string };
  /** Copies the image tagged "latest" (or opts.sourceTag) in layoutDir to HOST/repo:tag. */
  push(layoutDir: string, repo: string, tag: string, opts?: PushOptions): Promise<void>;
  /** Kills the registry process and removes dir. Safe to call twice. */
  stop(): Promise<void>;
}

function registryError(message: string, cause?: unknown, hint?: string): MinidockError {
  return new MinidockError('ERR_TEST_REGISTRY', message, { cause, hint });
}

/**
 * Returns a node:test skip reason naming what startRegistry and the fixture
 * builder need but this machine lacks, or false when all is there.
 */
export function missingTools(): string | false {
  const tools: [string, string][] = [
    ['/bin/busybox', 'busybox-static'],
    [registryBinary, 'docker-registry'],
    ['/usr/bin/skopeo', 'skopeo'],
    ['/usr/bin/htpasswd', 'apache2-utils'],
  ];
  const missing = tools.filter(([path]) => !existsSync(path));
  if (missing.length === 0) return false;
  const paths = missing.map(([path]) => path).join(', ');
  return `needs ${paths} (Debian packages ${missing.map(([, pkg]) => pkg).join(', ')})`;
}

/** Returns a port that was free a moment ago, found by binding port 0. */
export async function freePort(): Promise<number> {
  return new Promise((resolvePort, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      const port = typeof address === 'object' && address !== null ? address.port : 0;
      server.close(() => resolvePort(port));
    });
  });
}

function configYaml(dir: string, port: number, htpasswdPath: string | undefined, options: StartRegistryOptions): string {
  const lines = [
    'version: 0.1',
    'log:',
    '  level: error',
    '  accesslog:',
    '    disabled: true',
    'storage:',
    '  filesystem:',
    `    rootdirectory: ${JSON.stringify(join(dir, 'storage'))}`,
    '  delete:',
    '    enabled: true',
    'http:',
    `  addr: 127.0.0.1:${port}`,
    `  secret: ${randomBytes(16).toString('hex')}`,
  ];
  if (options.tls !== undefined) {
    lines.push(
      '  tls:',
      `    certificate: ${JSON.stringify(options.tls.certPath)}`,
      `    key: ${JSON.stringify(options.tls.keyPath)}`,
    );
    if (options.tls.clientCAPath !== undefined) {
      lines.push('    clientcas:', `      - ${JSON.stringify(options.tls.clientCAPath)}`);
    }
  }
  lines.push('health:', '  storagedriver:', '    enabled: false');
  if (options.token !== undefined) {
    lines.push(
      'auth:',
      '  token:',
      `    realm: ${JSON.stringify(options.token.realm)}`,
      `    service: ${JSON.stringify(options.token.service)}`,
      `    issuer: ${JSON.stringify(options.token.issuer)}`,
      `    rootcertbundle: ${JSON.stringify(options.token.certPath)}`,
    );
  }
  if (htpasswdPath !== undefined) {
    lines.push(
      'auth:',
      '  htpasswd:',
      '    realm: minidock-test',
      `    path: ${JSON.stringify(htpasswdPath)}`,
    );
  }
  return lines.join('\n') + '\n';
}

let preserveDigests: Promise<boolean> | undefined;

/** True when this skopeo's copy knows --preserve-digests (skopeo 1.6 and later). */
function skopeoPreservesDigests(): Promise<boolean> {
  preserveDigests ??= execFileAsync('skopeo', ['copy', '--help']).then(
    ({ stdout }) => stdout.includes('--preserve-digests'),
    () => false,
  );
  return preserveDigests;
}

/** Resolves when the process exits; at once if it already has. */
function exited(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  return new Promise((done) => child.once('exit', () => done()));
}

/**
 * Polls GET /v2/ until the registry answers (any HTTP status), the process
 * exits, or about 10 s pass. Throws with the registry's stderr otherwise.
 */
async function waitReady(child: ChildProcess, url: string, stderr: () => string, tls = false): Promise<void> {
  let lastError: unknown;
  for (let attempt = 0; attempt < 200; attempt++) {
    if (child.exitCode !== null || child.signalCode !== null) {
      const how =
        child.exitCode !== null ? `exit status ${child.exitCode}` : `signal ${child.signalCode}`;
      throw registryError(`start registry at ${url}: ${how}: ${stderr().trim() || 'no output'}`);
    }
    try {
      if (tls) {
        // Whether TLS is right is for the test to find out: here, only
        // that the registry accepts connections.
        await connected(new URL(url));
        return;
      }
      const res = await fetch(`${url}/v2/`, { signal: AbortSignal.timeout(1000) });
      await res.arrayBuffer();
      return;
    } catch (err) {
      lastError = err;
    }
    await new Promise((r) => setTimeout(r, 50));
  }
  throw registryError(
    `start registry at ${url}: no answer to GET /v2/ within 10 s ` +
      `(${messageOf(lastError)}): ${stderr().trim() || 'no output'}`,
    lastError,
  );
}

/** Resolves once a TCP connection to url's host and port succeeds. */
function connected(url: URL): Promise<void> {
  return new Promise((resolve, reject) => {
    const socket = connect(Number(url.port), url.hostname, () => {
      socket.destroy();
      resolve();
    });
    socket.once('error', reject);
  });
}

const live = new Set<ChildProcess>();
let exitHookInstalled = false;

/** Kills registries a test forgot to stop, so none outlives the test process. */
function installExitHook(): void {
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  process.once('exit', () => {
    for (const child of live) child.kill('SIGKILL');
  });
}

/**
 * Starts docker-registry on 127.0.0.1 with filesystem storage in a fresh
 * temporary directory and waits until it answers. With auth 'htpasswd',
 * every request needs basic auth as `credentials`. Throws MinidockError
 * (ERR_TEST_REGISTRY) with the registry's stderr when it does not come up.
 */
export async function startRegistry(options: StartRegistryOptions = {}): Promise<TestRegistry> {
  if (!existsSync(registryBinary)) {
    throw registryError(
      `start registry: ${registryBinary} not found`,
      undefined,
      'install the Debian package docker-registry (apt-get install docker-registry)',
    );
  }
  const dir = await mkdtemp(join(tmpdir(), 'minidock-registry-'));
  try {
    let credentials: TestRegistry['credentials'] = options.token?.credentials;
    let htpasswdPath: string | undefined;
    if (options.auth === 'htpasswd') {
      credentials = { username: 'minidock', password: randomBytes(12).toString('hex') };
      htpasswdPath = join(dir, 'htpasswd');
      // The registry accepts bcrypt entries only.
      const { username, password } = credentials;
      const { stdout } = await execFileAsync('htpasswd', ['-Bbn', username, password]);
      await writeFile(htpasswdPath, stdout.trim() + '\n', { mode: 0o600 });
    }

    // Another process may take the port between our probe and the
    // registry's bind; then the registry exits at once and we try again.
    for (let attempt = 1; ; attempt++) {
      const port = options.port ?? (await freePort());
      try {
        return await launch(dir, port, credentials, htpasswdPath, options);
      } catch (err) {
        const busy = /address already in use/.test(messageOf(err));
        if (!busy || options.port !== undefined || attempt >= 3) throw err;
      }
    }
  } catch (err) {
    await rm(dir, { recursive: true, force: true });
    throw err;
  }
}

async function launch(
  dir: string,
  port: number,
  credentials: TestRegistry['credentials'],
  htpasswdPath: string | undefined,
  options: StartRegistryOptions,
): Promise<TestRegistry> {
  const host = `127.0.0.1:${port}`;
  const url = `${options.tls ? 'https' : 'http'}://${host}`;
  const configPath = join(dir, 'config.yml');
  await writeFile(configPath, configYaml(dir, port, htpasswdPath, options));

  const child = spawn(registryBinary, ['serve', configPath], {
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  let stderr = '';
  child.stderr!.setEncoding('utf8');
  child.stderr!.on('data', (s: string) => {
    // Keep the tail: it is only shown when start-up fails.
    stderr = (stderr + s).slice(-8192);
  });
  const spawnFailed = new Promise<never>((_, reject) =>
    child.once('error', (err) =>
      reject(registryError(`start registry ${registryBinary}: ${err.message}`, err)),
    ),
  );
  spawnFailed.catch(() => {});
  live.add(child);
  installExitHook();

  const kill = async (): Promise<void> => {
    if (child.exitCode === null && child.signalCode === null && child.pid !== undefined) {
      child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), 5000);
      await exited(child);
      clearTimeout(timer);
    }
    live.delete(child);
  };

  try {
    await Promise.race([waitReady(child, url, () => stderr, options.tls !== undefined), spawnFailed]);
  } catch (err) {
    await kill();
    throw err;
  }

  let stopped: Promise<void> | undefined;
  return {
    host,
    url,
    dir,
    pid: child.pid!,
    ...(credentials === undefined ? {} : { credentials }),
    async push(layoutDir, repo, tag, opts = {}) {
      const args = ['--command-timeout', '120s'];
      if (!existsSync('/etc/containers/policy.json')) args.push('--insecure-policy');
      args.push('copy');
      if (options.tls !== undefined) args.push('--dest-cert-dir', options.tls.certDir);
      else args.push('--dest-tls-verify=false');
      if (opts.all) args.push('--all');
      if (await skopeoPreservesDigests()) args.push('--preserve-digests');
      if (credentials !== undefined) {
        args.push('--dest-creds', `${credentials.username}:${credentials.password}`);
      }
      args.push(`oci:${layoutDir}:${opts.sourceTag ?? 'latest'}`, `docker://${host}/${repo}:${tag}`);
      try {
        await execFileAsync('skopeo', args, { maxBuffer: 16 << 20 });
      } catch (err) {
        const stderrText = (err as { stderr?: string }).stderr?.trim();
        const what = `push ${JSON.stringify(layoutDir)} to ${host}/${repo}:${tag}`;
        throw registryError(`${what}: ${stderrText || messageOf(err)}`, err);
      }
    },
    stop() {
      stopped ??= (async () => {
        await kill();
        await rm(dir, { recursive: true, force: true });
      })();
      return stopped;
    },
  };
}
