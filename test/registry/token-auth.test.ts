/**
 * Bearer-token authentication against the real registry: Debian's
 * docker-registry configured with `auth: token:`, trusting the certificate
 * of a token issuer the test runs (test/helpers/token-issuer.ts), which signs
 * real JWTs. The client is driven through pullImage and the built CLI.
 */
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, afterEach, before, describe, test } from 'node:test';
import { MinidockError, RegistryError } from '../../src/errors.js';
import { pullImage } from '../../src/pull/index.js';
import { parseReference } from '../../src/reference.js';
import { Store } from '../../src/store/index.js';
import { makeTestRoot, runCli, type CliResult } from '../helpers/cli.js';
import { fixtureLayouts } from '../helpers/fixtures.js';
import { recordingLogger } from '../helpers/logger.js';
import { missingTools, startRegistry, type TestRegistry } from '../helpers/registry.js';
import { startTokenIssuer, type TokenIssuer } from '../helpers/token-issuer.js';

const skip =
  missingTools() ||
  (existsSync('/usr/bin/openssl') ? false : 'needs /usr/bin/openssl (Debian package openssl)') ||
  (process.getuid?.() !== 0 ? 'needs root (pull unpacks layers with their owners)' : false);

describe('token authentication against the real registry', { skip }, () => {
  let dir: string;
  let issuer: TokenIssuer;
  let registry: TestRegistry;
  const credentials = { username: 'tokenuser', password: 'pw-' + Math.random().toString(36).slice(2) };
  const cleanup: string[] = [];

  const freshStore = async () => {
    const root = makeTestRoot();
    cleanup.push(root);
    return Store.open(root);
  };
  const pull = async (store: Store, repo: string, options: Parameters<typeof pullImage>[2] = {}) =>
    pullImage(store, parseReference(`${registry.host}/${repo}:latest`), {
      ...options,
      registry: { credentials: () => credentials, retry: { baseDelayMs: 5 }, ...options.registry },
    });
  const scopesOf = (from: number) => issuer.requests.slice(from).map((r) => r.scopes);

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'minidock-token-'));
    cleanup.push(dir);
    issuer = await startTokenIssuer(dir, { credentials });
    registry = await startRegistry({
      token: { realm: issuer.realm, service: issuer.service, issuer: issuer.issuer, certPath: issuer.certPath, credentials },
    });
    const layouts = await fixtureLayouts();
    await registry.push(join(layouts, 'busybox'), 'library/busybox', 'latest');
    await registry.push(join(layouts, 'layered'), 'library/layered', 'latest');
  });

  // Each test may change what the issuer grants; the next starts afresh.
  afterEach(() => issuer?.setGrant(() => ({})));

  after(async () => {
    await registry?.stop();
    await issuer?.close();
    for (const d of cleanup) await rm(d, { recursive: true, force: true });
  });

  test('pulls with a token for the repository, asked for with service and scope', async () => {
    const from = issuer.requests.length;
    const result = await pull(await freshStore(), 'library/busybox');
    assert.equal(result.record.layers.length, 1);
    const asked = issuer.requests.slice(from);
    assert.equal(asked.length, 1, 'one token serves the whole pull');
    assert.equal(asked[0]!.service, issuer.service);
    assert.deepEqual(asked[0]!.scopes, ['repository:library/busybox:pull']);
    assert.equal(asked[0]!.user, credentials.username);
  });

  test('fetches a new token when the cached one expires mid-pull', async () => {
    // The clock moves 10 minutes on as the first layer completes; the
    // token's expires_in was 60 s, so the second layer needs a new one.
    let now = Date.now();
    issuer.setGrant(() => ({ expiresIn: 60 }));
    const from = issuer.requests.length;
    const result = await pull(await freshStore(), 'library/layered', {
      concurrency: 1,
      progress: (e) => {
        if (e.phase === 'complete') now += 600_000;
      },
      registry: { now: () => now },
    });
    assert.equal(result.record.layers.length, 2);
    assert.deepEqual(scopesOf(from), [['repository:library/layered:pull'], ['repository:library/layered:pull']]);
  });

  test('a token the registry refuses (expired by its clock) is replaced once, and the pull succeeds', async () => {
    // The first token expired two minutes ago (beyond the registry's
    // leeway) though expires_in says otherwise; later ones are good.
    let n = 0;
    issuer.setGrant(() => (n++ === 0 ? { expSeconds: -120, expiresIn: 300 } : {}));
    const from = issuer.requests.length;
    await pull(await freshStore(), 'library/busybox');
    assert.equal(issuer.requests.length - from, 2);
  });

  test('a token without the pull action gets one re-challenge, then a clear refusal', async () => {
    issuer.setGrant((req) => ({
      access: req.scopes.map((s) => ({ type: 'repository', name: s.split(':')[1]!, actions: [] })),
    }));
    const from = issuer.requests.length;
    const store = await freshStore();
    await assert.rejects(pull(store, 'library/busybox'), (err: unknown) => {
      assert.ok(err instanceof RegistryError, String(err));
      assert.equal(err.status, 401);
      assert.match(err.message, /^GET http:\/\/127\.0\.0\.1:\d+\/v2\/library\/busybox\/manifests\/latest: 401 Unauthorized/);
      return true;
    });
    // The bare request's challenge, then the refused token's challenge
    // (insufficient_scope): two tokens, no loop.
    assert.equal(issuer.requests.length - from, 2);
  });

  test('wrong credentials are refused by the token service in one error', async () => {
    const logger = recordingLogger();
    await assert.rejects(
      pull(await freshStore(), 'library/busybox', {
        logger,
        registry: { credentials: () => ({ username: credentials.username, password: 'wrong' }) },
      }),
      (err: unknown) => {
        assert.ok(err instanceof MinidockError, String(err));
        assert.match(err.message, /401 Unauthorized: wrong user name or password/);
        return true;
      },
    );
    assert.ok(logger.lines.every((l) => !l.includes('wrong') || !l.includes('Basic')));
  });

  describe('through the CLI', () => {
    let configDir: string;
    const outputs: CliResult[] = [];
    const cli = async (args: string[], input?: string) => {
      const root = makeTestRoot();
      cleanup.push(root);
      const r = await runCli(args, { root, input, env: { DOCKER_CONFIG: configDir } });
      outputs.push(r);
      return r;
    };

    before(async () => {
      configDir = await mkdtemp(join(tmpdir(), 'minidock-docker-config-'));
      cleanup.push(configDir);
    });

    test('pull refused without credentials, then login and pull succeed; no secret is printed', async () => {
      const image = `${registry.host}/library/busybox:latest`;
      const refused = await cli(['pull', image]);
      assert.equal(refused.code, 125, refused.stderr);
      const lines = refused.stderr.split('\n').filter((l) => l.startsWith('minidock: '));
      assert.equal(lines.length, 1, refused.stderr);
      assert.match(lines[0]!, /token.*401 Unauthorized: credentials required/);

      const from = issuer.requests.length;
      const login = await cli(['login', '-u', credentials.username, '--password-stdin', registry.host], credentials.password);
      assert.equal(login.code, 0, login.stderr);
      assert.equal(login.stdout, 'Login Succeeded\n');
      // docker login's check: a token with no repository scope.
      assert.deepEqual(issuer.requests.slice(from).map((r) => r.scopes), [[]]);

      const pulled = await cli(['pull', image]);
      assert.equal(pulled.code, 0, pulled.stderr);
      assert.equal(pulled.stdout, `${image}\n`);

      for (const r of outputs) {
        assert.ok(!r.stdout.includes(credentials.password) && !r.stderr.includes(credentials.password));
      }
    });
  });
});
