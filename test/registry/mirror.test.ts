/**
 * Registry mirrors for docker.io. Mirrors and the upstream are local: real
 * registries (Debian's docker-registry) holding the busybox fixture, and
 * mocks that refuse or fail. The client's docker.io origin points at a
 * local server in every case: nothing here reaches the real docker.io.
 */
import assert from 'node:assert/strict';
import { rm } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { MinidockError } from '../../src/errors.js';
import { pullImage } from '../../src/pull/index.js';
import { parseReference } from '../../src/reference.js';
import { RegistryClient } from '../../src/registry/index.js';
import { Store } from '../../src/store/index.js';
import { makeTestRoot } from '../helpers/cli.js';
import { fixtureLayouts } from '../helpers/fixtures.js';
import { recordingLogger } from '../helpers/logger.js';
import { missingTools, startRegistry, type TestRegistry } from '../helpers/registry.js';
import { sendError, startMock, type MockServer } from './mock-server.js';

const skip =
  missingTools() || (process.getuid?.() !== 0 ? 'needs root (pull unpacks layers with their owners)' : false);

describe('registry-mirrors for docker.io', { skip }, () => {
  let holder: TestRegistry;
  let unused: MockServer;
  let failing: MockServer;
  let empty: MockServer;
  const roots: string[] = [];

  before(async () => {
    holder = await startRegistry();
    await holder.push(join(await fixtureLayouts(), 'busybox'), 'library/busybox', 'latest');
    // An upstream or mirror that must not be asked anything.
    unused = await startMock((req, res) => sendError(res, 500, 'UNUSED', 'this server should not be asked'));
    failing = await startMock((req, res) => sendError(res, 503, 'UNAVAILABLE', 'mirror down'));
    empty = await startMock((req, res) => sendError(res, 404, 'MANIFEST_UNKNOWN', 'manifest unknown'));
  });

  after(async () => {
    await holder?.stop();
    for (const m of [unused, failing, empty]) await m?.close();
    for (const r of roots) await rm(r, { recursive: true, force: true });
  });

  const pull = async (reference: string, mirrors: string[], hubOrigin: string) => {
    const root = makeTestRoot();
    roots.push(root);
    const logger = recordingLogger();
    const result = await pullImage(await Store.open(root), parseReference(reference), {
      logger,
      registry: { mirrors, hubOrigin, retry: { tries: 2, baseDelayMs: 5 } },
    });
    return { result, warnings: logger.lines.filter((l) => l.startsWith('warn ')) };
  };

  test('pulls a docker.io image from the mirror, never asking the upstream', async () => {
    const { result, warnings } = await pull('busybox', [holder.url], unused.origin);
    assert.equal(result.record.repoDigests[0]!.split('@')[0], 'docker.io/library/busybox');
    assert.equal(unused.requests.length, 0);
    assert.deepEqual(warnings, []);
  });

  test('falls back to the upstream when a mirror fails, and to the next mirror first', async () => {
    const before = failing.requests.length;
    const { warnings } = await pull('docker.io/library/busybox:latest', [failing.origin, empty.origin], holder.url);
    // The failing mirror was tried once (with its retry) and then left alone.
    assert.equal(failing.requests.length - before, 2);
    assert.equal(empty.requestsTo('/v2/library/busybox/manifests/latest').length, 1);
    assert.deepEqual(warnings.map((w) => w.replace(/:\d+/g, ':PORT')), [
      `warn 127.0.0.1:PORT answered 503 Service Unavailable, retrying in 0.01s`,
      `warn mirror 127.0.0.1:PORT: GET http://127.0.0.1:PORT/v2/library/busybox/manifests/latest: 503 Service Unavailable: mirror down; pulling from docker.io instead`,
      `warn mirror 127.0.0.1:PORT: resolve docker.io/library/busybox:latest: manifest unknown; pulling from docker.io instead`,
    ]);
  });

  test('mirrors are for docker.io only', async () => {
    const before = unused.requests.length;
    await pull(`${holder.host}/library/busybox:latest`, [unused.origin], unused.origin);
    assert.equal(unused.requests.length, before);
  });

  test('refuses a mirror that is not an http(s) origin, naming it', () => {
    for (const bad of ['mirror.example', 'https://mirror.example/v2/', 'ftp://mirror.example']) {
      assert.throws(() => new RegistryClient({ mirrors: [bad] }), (err: MinidockError) => {
        assert.equal(err.code, 'ERR_CONFIG');
        assert.ok(err.message.startsWith(`registry mirror ${JSON.stringify(bad)}`), err.message);
        return true;
      });
    }
  });
});
