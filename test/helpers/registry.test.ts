import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { createServer, type AddressInfo } from 'node:net';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { digestOf } from '../../src/digest.js';
import type { ImageIndex, ImageManifest } from '../../src/image/index.js';
import { fixtureLayouts } from './fixtures.js';
import { layoutEntry } from './layout.js';
import { missingTools, startRegistry, type TestRegistry } from './registry.js';

const skip = missingTools();

const accept = [
  'application/vnd.oci.image.index.v1+json',
  'application/vnd.oci.image.manifest.v1+json',
  'application/vnd.docker.distribution.manifest.list.v2+json',
  'application/vnd.docker.distribution.manifest.v2+json',
].join(', ');

async function getManifest(
  reg: TestRegistry,
  repo: string,
  ref: string,
  headers: Record<string, string> = {},
) {
  const res = await fetch(`${reg.url}/v2/${repo}/manifests/${ref}`, {
    headers: { accept, ...headers },
  });
  const raw = Buffer.from(await res.arrayBuffer());
  return { res, raw };
}

describe('startRegistry', { skip }, () => {
  let reg: TestRegistry;
  let layouts: string;

  before(async () => {
    layouts = await fixtureLayouts();
    reg = await startRegistry();
    await reg.push(join(layouts, 'busybox'), 'library/busybox', 'latest');
    await reg.push(join(layouts, 'layered'), 'library/layered', 'v1');
    await reg.push(join(layouts, 'multiarch'), 'library/multiarch', 'latest', { all: true });
  });

  after(async () => {
    await reg?.stop();
  });

  it('listens on 127.0.0.1 and answers the v2 ping', async () => {
    assert.match(reg.host, /^127\.0\.0\.1:\d+$/);
    assert.equal(reg.url, `http://${reg.host}`);
    const res = await fetch(`${reg.url}/v2/`);
    await res.arrayBuffer();
    assert.equal(res.status, 200);
  });

  it('serves a pushed image under the digest the layout gives it', async () => {
    for (const [name, repo, tag] of [
      ['busybox', 'library/busybox', 'latest'],
      ['layered', 'library/layered', 'v1'],
    ] as const) {
      const want = await layoutEntry(join(layouts, name));
      const { res, raw } = await getManifest(reg, repo, tag);
      assert.equal(res.status, 200);
      assert.equal(res.headers.get('content-type'), 'application/vnd.oci.image.manifest.v1+json');
      assert.equal(res.headers.get('docker-content-digest'), want.digest);
      assert.equal(digestOf(raw), want.digest);

      // The layers and config were pushed as they are, too.
      const m = JSON.parse(raw.toString()) as ImageManifest;
      for (const d of [m.config, ...m.layers]) {
        const blob = await fetch(`${reg.url}/v2/${repo}/blobs/${d.digest}`);
        assert.equal(digestOf(Buffer.from(await blob.arrayBuffer())), d.digest);
      }
    }
  });

  it('serves the multiarch index, its three platforms and every manifest listed', async () => {
    const want = await layoutEntry(join(layouts, 'multiarch'));
    const { res, raw } = await getManifest(reg, 'library/multiarch', 'latest');
    assert.equal(res.status, 200);
    assert.equal(res.headers.get('content-type'), 'application/vnd.oci.image.index.v1+json');
    assert.equal(digestOf(raw), want.digest);

    const index = JSON.parse(raw.toString()) as ImageIndex;
    assert.deepEqual(
      index.manifests.map((d) => [d.platform?.os, d.platform?.architecture, d.platform?.variant]),
      [
        ['linux', 'arm64', 'v8'],
        ['linux', 'amd64', undefined],
        ['unknown', 'unknown', undefined],
      ],
    );
    for (const d of index.manifests) {
      const child = await getManifest(reg, 'library/multiarch', d.digest);
      assert.equal(child.res.status, 200, `manifest ${d.digest} was pushed`);
      assert.equal(digestOf(child.raw), d.digest);
    }
  });

  it('stops: the process is gone and its directory removed', async () => {
    const other = await startRegistry();
    const dir = other.dir;
    assert.ok(existsSync(join(dir, 'config.yml')));
    await other.stop();
    assert.throws(() => process.kill(other.pid, 0), { code: 'ESRCH' });
    assert.equal(existsSync(dir), false);
    await assert.rejects(fetch(`${other.url}/v2/`));
    await other.stop();
  });
});

describe('startRegistry on a port already taken', { skip }, () => {
  it('rejects with the registry\'s own complaint', async () => {
    // Connections are dropped at once: only the port matters.
    const blocker = createServer((socket) => socket.destroy());
    await new Promise<void>((done) => blocker.listen(0, '127.0.0.1', done));
    const port = (blocker.address() as AddressInfo).port;
    try {
      await assert.rejects(startRegistry({ port }), (err: Error) => {
        const prefix = `start registry at http://127.0.0.1:${port}: exit status `;
        assert.ok(err.message.startsWith(prefix), err.message);
        assert.match(err.message, /address already in use/);
        return true;
      });
    } finally {
      await new Promise((done) => blocker.close(done));
    }
  });
});

describe('startRegistry with htpasswd auth', { skip }, () => {
  let reg: TestRegistry;

  before(async () => {
    reg = await startRegistry({ auth: 'htpasswd' });
  });

  after(async () => {
    await reg?.stop();
  });

  it('refuses requests without credentials and accepts its own', async () => {
    const anonymous = await fetch(`${reg.url}/v2/`);
    await anonymous.arrayBuffer();
    assert.equal(anonymous.status, 401);
    assert.match(anonymous.headers.get('www-authenticate') ?? '', /^Basic realm="minidock-test"/);

    const { username, password } = reg.credentials!;
    const authorization = `Basic ${Buffer.from(`${username}:${password}`).toString('base64')}`;
    const ok = await fetch(`${reg.url}/v2/`, { headers: { authorization } });
    await ok.arrayBuffer();
    assert.equal(ok.status, 200);
  });

  it('pushes with its credentials', async () => {
    const layouts = await fixtureLayouts();
    await reg.push(join(layouts, 'busybox'), 'private/busybox', 'latest');
    const { username, password } = reg.credentials!;
    const authorization = `Basic ${Buffer.from(`${username}:${password}`).toString('base64')}`;
    const { res, raw } = await getManifest(reg, 'private/busybox', 'latest', { authorization });
    assert.equal(res.status, 200);
    assert.equal(digestOf(raw), (await layoutEntry(join(layouts, 'busybox'))).digest);
  });
});
