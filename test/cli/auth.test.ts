/**
 * login, logout and pulling with kept credentials, end to end: the built
 * CLI against a real registry (Debian's docker-registry on 127.0.0.1) that
 * wants htpasswd Basic auth, with DOCKER_CONFIG in a temporary directory.
 */
import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { makeTestRoot, runCli, type CliResult } from '../helpers/cli.js';
import { fixtureLayouts } from '../helpers/fixtures.js';
import { missingTools, startRegistry, type TestRegistry } from '../helpers/registry.js';

const skip =
  missingTools() || (process.getuid?.() !== 0 ? 'needs root (pull unpacks layers with their owners)' : false);

/** The lines of stderr that report an error (the ones "minidock: " starts). */
function errorLines(r: CliResult): string[] {
  return r.stderr.split('\n').filter((l) => l.startsWith('minidock: '));
}

describe('minidock login, logout and pull with credentials', { skip }, () => {
  let registry: TestRegistry;
  let configDir: string;
  let image: string;
  let username: string;
  let password: string;
  const roots: string[] = [];
  const outputs: CliResult[] = [];

  const cli = async (args: string[], input?: string): Promise<CliResult> => {
    const root = makeTestRoot();
    roots.push(root);
    const r = await runCli(args, { root, input, env: { DOCKER_CONFIG: configDir } });
    outputs.push(r);
    return r;
  };

  const assertPullRefused = (r: CliResult) => {
    assert.equal(r.code, 125, r.stderr);
    assert.equal(r.stdout, '');
    const lines = errorLines(r);
    assert.equal(lines.length, 1, r.stderr);
    assert.match(lines[0]!, /unauthorized|authentication/i);
    assert.doesNotMatch(r.stderr, /^\s+at /m, 'no stack trace');
  };

  before(async () => {
    const layouts = await fixtureLayouts();
    registry = await startRegistry({ auth: 'htpasswd' });
    ({ username, password } = registry.credentials!);
    await registry.push(join(layouts, 'busybox'), 'library/busybox', 'latest');
    image = `${registry.host}/library/busybox:latest`;
    configDir = await mkdtemp(join(tmpdir(), 'minidock-docker-config-'));
  });

  after(async () => {
    await registry?.stop();
    if (configDir) await rm(configDir, { recursive: true, force: true });
    for (const root of roots) await rm(root, { recursive: true, force: true });
  });

  test('pull without credentials fails with one line naming the refusal', async () => {
    assertPullRefused(await cli(['pull', '-q', image]));
  });

  test('login with a wrong password fails and writes nothing', async () => {
    const r = await cli(['login', '--username', username, '--password-stdin', registry.host], 'not-the-password\n');
    assert.equal(r.code, 125, r.stderr);
    assert.equal(r.stdout, '');
    const lines = errorLines(r);
    assert.equal(lines.length, 1, r.stderr);
    assert.match(lines[0]!, new RegExp(`^minidock: login to ${registry.host}: unauthorized: `));
    await assert.rejects(stat(join(configDir, 'config.json')), { code: 'ENOENT' });
  });

  test('login without --password-stdin on a pipe refuses to prompt', async () => {
    const r = await cli(['login', '--username', username, registry.host], `${password}\n`);
    assert.equal(r.code, 125, r.stderr);
    assert.match(errorLines(r)[0] ?? '', /stdin is not a terminal/);
  });

  test('login --password-stdin with the right password writes config.json', async () => {
    const r = await cli(['login', '--username', username, '--password-stdin', registry.host], `${password}\n`);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout, 'Login Succeeded\n');

    const file = join(configDir, 'config.json');
    assert.equal((await stat(file)).mode & 0o777, 0o600);
    const config = JSON.parse(await readFile(file, 'utf8'));
    assert.deepEqual(config.auths, {
      [registry.host]: { auth: Buffer.from(`${username}:${password}`).toString('base64') },
    });
  });

  test('pull with the kept credentials succeeds', async () => {
    const r = await cli(['pull', image]);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout, `${image}\n`);
    assert.match(r.stderr, /Digest: sha256:[0-9a-f]{64}/);
  });

  test('pull --debug logs requests but never the password', async () => {
    const r = await cli(['--debug', 'pull', '-q', image]);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stderr, /GET http:\/\/127\.0\.0\.1/);
    assert.doesNotMatch(r.stderr, /authorization|basic /i);
  });

  test('logout removes the entry and pull fails again', async () => {
    const r = await cli(['logout', registry.host]);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout, `Removing login credentials for ${registry.host}\n`);
    const config = JSON.parse(await readFile(join(configDir, 'config.json'), 'utf8'));
    assert.deepEqual(config.auths, {});

    const again = await cli(['logout', registry.host]);
    assert.equal(again.stdout, `Not logged in to ${registry.host}\n`);

    assertPullRefused(await cli(['pull', '-q', image]));
  });

  test('the password is in no command\'s stdout or stderr', () => {
    assert.ok(outputs.length >= 8, 'every command above ran');
    const basic = Buffer.from(`${username}:${password}`).toString('base64');
    for (const r of outputs) {
      for (const secret of [password, basic]) {
        assert.ok(!r.stdout.includes(secret), 'stdout holds no secret');
        assert.ok(!r.stderr.includes(secret), 'stderr holds no secret');
      }
    }
  });
});
