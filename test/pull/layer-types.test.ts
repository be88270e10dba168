/**
 * Pulling layers of each kind: zstd (an image rewritten from the busybox
 * fixture with its layer recompressed by the zstd command, pushed to the
 * real registry by skopeo), unknown layer media types, and foreign layers
 * whose `urls` point at a server other than the registry.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gunzipSync } from 'node:zlib';
import { after, before, describe, test } from 'node:test';
import { digestOf, hexOf, type Digest } from '../../src/digest.js';
import { MinidockError, NotImplementedError } from '../../src/errors.js';
import { MediaType, type Descriptor, type ImageManifest } from '../../src/image/index.js';
import { pullImage } from '../../src/pull/index.js';
import { parseReference } from '../../src/reference.js';
import { Store } from '../../src/store/index.js';
import { zstdCommandPaths } from '../../src/unpack/decompress.js';
import { makeTestRoot } from '../helpers/cli.js';
import { fixtureLayouts } from '../helpers/fixtures.js';
import { layoutEntry, readLayoutBlob, readLayoutJSON } from '../helpers/layout.js';
import { missingTools, startRegistry, type TestRegistry } from '../helpers/registry.js';
import { startMock, type MockServer } from '../registry/mock-server.js';

const zstdCommand = zstdCommandPaths.find((p) => existsSync(p));
const skip =
  missingTools() ||
  (zstdCommand === undefined ? 'needs the zstd command (Debian package zstd)' : false) ||
  (process.getuid?.() !== 0 ? 'needs root (layers are applied with their owners)' : false);

/** Writes an OCI layout holding one image built from blobs, tagged "latest". */
async function writeLayout(dir: string, manifest: ImageManifest, blobs: Buffer[]): Promise<Descriptor> {
  await mkdir(join(dir, 'blobs', 'sha256'), { recursive: true });
  const raw = Buffer.from(JSON.stringify(manifest));
  for (const b of [...blobs, raw]) await writeFile(join(dir, 'blobs', 'sha256', hexOf(digestOf(b))), b);
  const d: Descriptor = {
    mediaType: MediaType.ociManifest,
    digest: digestOf(raw),
    size: raw.length,
    annotations: { 'org.opencontainers.image.ref.name': 'latest' },
  };
  await writeFile(join(dir, 'oci-layout'), '{"imageLayoutVersion":"1.0.0"}');
  await writeFile(join(dir, 'index.json'), JSON.stringify({ schemaVersion: 2, manifests: [d] }));
  return d;
}

describe('pulling layers by media type', { skip }, () => {
  let registry: TestRegistry;
  let dir: string;
  let busybox: { manifest: ImageManifest; config: Buffer; layer: Buffer; diffID: Digest };
  const roots: string[] = [];
  const freshStore = () => {
    const r = makeTestRoot();
    roots.push(r);
    return Store.open(r);
  };

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'minidock-layer-types-'));
    const layout = join(await fixtureLayouts(), 'busybox');
    const manifest = await readLayoutJSON<ImageManifest>(layout, (await layoutEntry(layout)).digest);
    const config = await readLayoutBlob(layout, manifest.config.digest);
    const layer = await readLayoutBlob(layout, manifest.layers[0]!.digest);
    busybox = { manifest, config, layer, diffID: JSON.parse(config.toString()).rootfs.diff_ids[0] };
    registry = await startRegistry();
  });

  after(async () => {
    await registry?.stop();
    if (dir) await rm(dir, { recursive: true, force: true });
    for (const r of roots) await rm(r, { recursive: true, force: true });
  });

  test('pulls a zstd layer pushed to the real registry, unpacking the same tar as the gzip one', async () => {
    const tar = gunzipSync(busybox.layer);
    const zst = execFileSync(zstdCommand!, ['-q', '-c', '-19'], { input: tar, maxBuffer: 64 << 20 });
    const layerDesc: Descriptor = { mediaType: MediaType.ociLayerZstd, digest: digestOf(zst), size: zst.length };
    const manifest: ImageManifest = { ...busybox.manifest, layers: [layerDesc] };
    await writeLayout(join(dir, 'zstd'), manifest, [busybox.config, zst]);
    await registry.push(join(dir, 'zstd'), 'library/busybox-zstd', 'latest');

    const store = await freshStore();
    const result = await pullImage(store, parseReference(`${registry.host}/library/busybox-zstd:latest`));
    assert.equal(result.record.layers[0]!.mediaType, MediaType.ociLayerZstd);
    assert.equal(result.record.layers[0]!.digest, layerDesc.digest);
    assert.deepEqual(result.record.diffIDs, [busybox.diffID]);
    // The blob is stored as sent; the layer holds busybox.
    assert.deepEqual(await readFile(store.path('blobs', 'sha256', hexOf(layerDesc.digest))), zst);
    const diff = store.path('layers', hexOf(busybox.diffID), 'diff');
    assert.ok((await readdir(join(diff, 'bin'))).includes('busybox'));
  });

  test('refuses an unknown layer media type by name, before any layer is fetched', async () => {
    const odd = 'application/vnd.example.layer.v1.tar+lz4';
    const manifest: ImageManifest = {
      ...busybox.manifest,
      layers: [{ ...busybox.manifest.layers[0]!, mediaType: odd }],
    };
    await writeLayout(join(dir, 'odd'), manifest, [busybox.config, busybox.layer]);
    await registry.push(join(dir, 'odd'), 'library/odd', 'latest');

    const store = await freshStore();
    await assert.rejects(pullImage(store, parseReference(`${registry.host}/library/odd:latest`)), (err: unknown) => {
      assert.ok(err instanceof NotImplementedError, String(err));
      assert.equal(err.message, `not implemented: layer media type ${JSON.stringify(odd)}`);
      return true;
    });
    assert.deepEqual(await readdir(store.path('layers')), []);
  });
});

describe('pulling foreign layers (mock registry and a mock foreign host)', { skip }, () => {
  let busybox: { manifest: ImageManifest; config: Buffer; layer: Buffer; diffID: Digest };
  let registry: MockServer;
  let foreign: MockServer;
  let manifest: Buffer;
  const want = `Basic ${Buffer.from('user:secret').toString('base64')}`;
  const roots: string[] = [];

  before(async () => {
    const layout = join(await fixtureLayouts(), 'busybox');
    const m = await readLayoutJSON<ImageManifest>(layout, (await layoutEntry(layout)).digest);
    const config = await readLayoutBlob(layout, m.config.digest);
    const layer = await readLayoutBlob(layout, m.layers[0]!.digest);
    busybox = { manifest: m, config, layer, diffID: JSON.parse(config.toString()).rootfs.diff_ids[0] };
    // The foreign host is another loopback address: a different host.
    foreign = await startMock((req, res) => {
      if (req.url === `/layers/${hexOf(m.layers[0]!.digest)}`) res.end(layer);
      else res.writeHead(404).end();
    }, '127.0.0.2');
    // The registry wants Basic credentials for everything and holds no
    // copy of the foreign layer.
    registry = await startMock((req, res) => {
      if (req.headers.authorization !== want) {
        res.writeHead(401, { 'www-authenticate': 'Basic realm="mock"' }).end();
      } else if (req.url?.includes('/manifests/')) {
        res.writeHead(200, { 'content-type': MediaType.dockerManifest }).end(manifest);
      } else if (req.url?.endsWith(`/blobs/${m.config.digest}`)) {
        res.end(config);
      } else {
        res.writeHead(404).end();
      }
    });
  });

  after(async () => {
    await registry?.close();
    await foreign?.close();
    for (const r of roots) await rm(r, { recursive: true, force: true });
  });

  const pull = (repo: string, urls: string[]) => {
    manifest = Buffer.from(
      JSON.stringify({
        schemaVersion: 2,
        mediaType: MediaType.dockerManifest,
        config: { ...busybox.manifest.config, mediaType: MediaType.dockerConfig },
        layers: [{ ...busybox.manifest.layers[0]!, mediaType: MediaType.dockerForeignLayerGzip, urls }],
      }),
    );
    const root = makeTestRoot();
    roots.push(root);
    return Store.open(root).then((store) =>
      pullImage(store, parseReference(`${registry.host}/${repo}:latest`), {
        registry: { credentials: () => ({ username: 'user', password: 'secret' }), retry: { tries: 1 } },
      }).then((result) => ({ store, result })),
    );
  };

  test('fetches a foreign layer from its url, without the registry\'s credentials', async () => {
    const url = `${foreign.origin}/layers/${hexOf(busybox.manifest.layers[0]!.digest)}`;
    const { store, result } = await pull('app/foreign', [url]);
    assert.deepEqual(result.record.diffIDs, [busybox.diffID]);
    assert.deepEqual(await readFile(store.path('blobs', 'sha256', hexOf(busybox.manifest.layers[0]!.digest))), busybox.layer);
    assert.equal(foreign.requests.length, 1);
    assert.equal(foreign.requests[0]!.headers.authorization, undefined);
    assert.equal(registry.requestsTo(`/v2/app/foreign/blobs/${busybox.manifest.layers[0]!.digest}`).length, 0);
  });

  test('tries the urls in order and fails without falling back to the registry', async () => {
    const missing = `${foreign.origin}/layers/none`;
    await assert.rejects(pull('app/gone', [missing, 'ftp://127.0.0.2/x']), (err: unknown) => {
      assert.ok(err instanceof MinidockError, String(err));
      assert.match(err.message, /foreign layer .*: GET http:\/\/127\.0\.0\.2:\d+\/layers\/none: 404 Not Found; ftp:\/\/127\.0\.0\.2\/x: not http\(s\)/);
      return true;
    });
    assert.equal(registry.requestsTo(`/v2/app/gone/blobs/${busybox.manifest.layers[0]!.digest}`).length, 0);
  });
});
