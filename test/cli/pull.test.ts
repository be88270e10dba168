/**
 * `minidock pull` as users see it: --platform with Docker's normalization
 * and arm rules, the list of platforms when none matches, -q, and the
 * warning when a registry rate-limits. The registry is the real one; the
 * 429 comes from a proxy in front of it (a mock: the registry cannot be
 * made to rate-limit).
 */
import assert from 'node:assert/strict';
import { readFile, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { makeTestRoot, runCli } from '../helpers/cli.js';
import { fixtureLayouts } from '../helpers/fixtures.js';
import { startProxy, type TestProxy } from '../helpers/proxy.js';
import { missingTools, startRegistry, type TestRegistry } from '../helpers/registry.js';

const skip =
  missingTools() || (process.getuid?.() !== 0 ? 'needs root (namespaces, overlay, layers with their owners)' : false);

describe('minidock pull', { skip }, () => {
  let registry: TestRegistry;
  let proxy: TestProxy;
  let multiarch: string;
  const roots: string[] = [];
  const cli = (args: string[]) => {
    const root = makeTestRoot();
    roots.push(root);
    return runCli(args, { root }).then((r) => ({ ...r, root }));
  };

  before(async () => {
    const layouts = await fixtureLayouts();
    registry = await startRegistry();
    await registry.push(join(layouts, 'multiarch'), 'library/multiarch', 'latest', { all: true });
    multiarch = `${registry.host}/library/multiarch:latest`;
    let limited = false;
    proxy = await startProxy(registry.url, {
      intercept: (req, res) => {
        if (limited || !req.url?.includes('/manifests/')) return false;
        limited = true;
        res.writeHead(429, { 'retry-after': '1', 'content-type': 'application/json' });
        res.end(JSON.stringify({ errors: [{ code: 'TOOMANYREQUESTS', message: 'slow down' }] }));
        return true;
      },
    });
  });

  after(async () => {
    await proxy?.close();
    await registry?.stop();
    for (const r of roots) await rm(r, { recursive: true, force: true });
  });

  /** The platform of the only image pulled into root. */
  const pulledPlatform = async (root: string, stdout: string) => {
    const digest = stdout.trim();
    const images = JSON.parse(await readFile(join(root, 'repositories.json'), 'utf8'));
    const id = images[multiarch] as string;
    const record = JSON.parse(await readFile(join(root, 'images', `${id.slice(7)}.json`), 'utf8'));
    return { platform: record.platform, digest, indexDigest: record.indexDigest };
  };

  for (const [given, arch] of [
    ['linux/arm64', 'arm64'],
    ['linux/arm64/v8', 'arm64'],
    ['linux/aarch64', 'arm64'],
    ['LINUX/X86_64', 'amd64'],
  ] as const) {
    test(`--platform ${given} picks the ${arch} entry of the index`, async () => {
      const r = await cli(['pull', '-q', '--platform', given, multiarch]);
      assert.equal(r.code, 0, r.stderr);
      const got = await pulledPlatform(r.root, r.stdout);
      assert.equal(got.platform.architecture, arch);
      // -q prints the digest the reference resolved to: the index's.
      assert.equal(got.digest, got.indexDigest);
    });
  }

  test('--platform that the index lacks lists what it offers, in one error', async () => {
    for (const given of ['linux/s390x', 'linux/arm/v7']) {
      const r = await cli(['pull', '--platform', given, multiarch]);
      assert.equal(r.code, 125, r.stderr);
      assert.equal(r.stdout, '');
      const lines = r.stderr.split('\n').filter((l) => l.startsWith('minidock: '));
      assert.deepEqual(lines, [
        `minidock: no matching manifest for ${given} in the manifest list entries: linux/arm64/v8, linux/amd64`,
      ]);
      assert.match(r.stderr, /^hint: pick one of these with --platform$/m);
    }
  });

  test('run --platform pulls and runs that entry', async () => {
    // The fixture's arm64 entry holds the same busybox (this machine runs
    // it) with FIXTURE=arm64 in its environment.
    const r = await cli(['run', '--rm', '-q', '--platform', 'linux/arm64', multiarch, 'sh', '-c', 'echo $FIXTURE']);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout, 'arm64\n');
  });

  test('a 429 is waited out as Retry-After says, and the user is told', async () => {
    const image = `${proxy.host}/library/multiarch:latest`;
    const r = await cli(['pull', image]);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stderr, new RegExp(`^warning: rate limited by ${proxy.host}, retrying in 1s$`, 'm'));
    assert.equal(r.stdout, `${image}\n`);
  });
});
