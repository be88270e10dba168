/**
 * pullImage against a hostile registry: a mock that sends what a real
 * registry would not (wrong sizes, cut connections, configs that borrow
 * another image's layer). Each case checks that nothing unverified is
 * stored and nothing partial is left behind.
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { after, before, describe, test } from 'node:test';
import { digestOf, type Digest } from '../../src/digest.js';
import { MinidockError } from '../../src/errors.js';
import { MediaType } from '../../src/image/index.js';
import { pullImage } from '../../src/pull/index.js';
import { parseReference } from '../../src/reference.js';
import { Store } from '../../src/store/index.js';
import { makeTar } from '../helpers/make-tar.js';
import { startMock, type MockServer } from '../registry/mock-server.js';

const skip = process.getuid?.() !== 0 ? 'needs root (layers are applied with their owners)' : false;

interface Image {
  manifest: Buffer;
  blobs: Map<string, Buffer>;
}

async function makeImage(files: Record<string, string>, opts: { diffID?: Digest } = {}): Promise<Image & { layer: Buffer; diffID: Digest }> {
  const tar = await makeTar(Object.entries(files).map(([name, content]) => ({ name, content })));
  const layer = gzipSync(tar);
  const diffID = digestOf(tar);
  const config = Buffer.from(
    JSON.stringify({ architecture: 'amd64', os: 'linux', rootfs: { type: 'layers', diff_ids: [opts.diffID ?? diffID] } }),
  );
  const manifest = Buffer.from(
    JSON.stringify({
      schemaVersion: 2,
      mediaType: MediaType.ociManifest,
      config: { mediaType: MediaType.ociConfig, digest: digestOf(config), size: config.length },
      layers: [{ mediaType: MediaType.ociLayerGzip, digest: digestOf(layer), size: layer.length }],
    }),
  );
  return { manifest, blobs: new Map([[digestOf(config), config], [digestOf(layer), layer]]), layer, diffID };
}

type BlobMode = 'ok' | 'too-long' | 'endless' | 'cut';

describe('pullImage against a hostile registry (mock)', { skip }, () => {
  const images = new Map<string, Image>();
  const modes = new Map<string, BlobMode>();
  let mock: MockServer;
  let root: string;

  before(async () => {
    mock = await startMock((req, res) => {
      const m = /^\/v2\/(.+)\/(manifests|blobs)\/(.+)$/.exec(req.url ?? '');
      const image = m && images.get(m[1]!);
      if (!m || !image) {
        res.statusCode = 404;
        res.end();
        return;
      }
      if (m[2] === 'manifests') {
        res.setHeader('Content-Type', MediaType.ociManifest);
        res.end(image.manifest);
        return;
      }
      const blob = image.blobs.get(m[3]!);
      if (!blob) {
        res.statusCode = 404;
        res.end();
        return;
      }
      const mode = modes.get(m[1]!) ?? 'ok';
      const isLayer = blob[0] === 0x1f;
      if (!isLayer || mode === 'ok') {
        res.end(blob);
      } else if (mode === 'too-long') {
        res.end(Buffer.concat([blob, Buffer.alloc(4096, 1)]));
      } else if (mode === 'endless') {
        // Bounded on our side too: at most 64 MiB, then the socket is closed.
        let sent = 0;
        const chunk = Buffer.alloc(64 * 1024, 7);
        const push = () => {
          while (sent < 64 << 20 && res.write(chunk)) sent += chunk.length;
          if (sent >= 64 << 20) res.destroy();
        };
        res.on('drain', push);
        res.write(blob);
        push();
      } else {
        res.setHeader('Content-Length', String(blob.length));
        res.write(blob.subarray(0, blob.length >> 1));
        setTimeout(() => res.destroy(), 20);
      }
    });
  });

  after(async () => {
    await mock?.close();
  });

  const freshStore = async () => {
    root = await mkdtemp(join(tmpdir(), 'minidock-pull-'));
    return Store.open(root);
  };
  const assertNothingLeft = async (store: Store, bad: Digest) => {
    const blobs = await readdir(store.path('blobs', 'sha256'));
    assert.ok(!blobs.includes(bad.slice(7)), 'the layer blob is not stored');
    for (const hex of blobs) {
      assert.equal(createHash('sha256').update(await readFile(store.path('blobs', 'sha256', hex))).digest('hex'), hex);
    }
    assert.deepEqual(await readdir(store.path('layers')), []);
    assert.deepEqual(await readdir(store.path('tmp')), []);
    assert.deepEqual(await readdir(store.path('images')), []);
  };

  for (const mode of ['too-long', 'endless', 'cut'] as const) {
    test(`refuses a layer body that is ${mode}, storing nothing`, async () => {
      const image = await makeImage({ 'hello.txt': 'hello' });
      images.set(`bad/${mode}`, image);
      modes.set(`bad/${mode}`, mode);
      const store = await freshStore();
      try {
        await assert.rejects(pullImage(store, parseReference(`${mock.host}/bad/${mode}:latest`)), (err: unknown) => {
          assert.ok(err instanceof MinidockError, `a MinidockError, got ${String(err)}`);
          assert.match(err.message, new RegExp(digestOf(image.layer)));
          return true;
        });
        await assertNothingLeft(store, digestOf(image.layer));
      } finally {
        await rm(root, { recursive: true, force: true });
      }
    });
  }

  test('does not let a config borrow a stored layer by naming its diffID', async () => {
    const honest = await makeImage({ 'who.txt': 'honest' });
    const sneaky = await makeImage({ 'who.txt': 'sneaky' }, { diffID: honest.diffID });
    images.set('good/honest', honest);
    images.set('bad/sneaky', sneaky);
    const store = await freshStore();
    try {
      await pullImage(store, parseReference(`${mock.host}/good/honest:latest`));
      // Stored as a blob too, so that both shortcuts are tempting.
      await assert.rejects(pullImage(store, parseReference(`${mock.host}/bad/sneaky:latest`)), /diffID of layer/);
      const layerFile = await readFile(store.path('layers', honest.diffID.slice(7), 'diff', 'who.txt'), 'utf8');
      assert.equal(layerFile, 'honest');
      assert.equal((await readdir(store.path('images'))).length, 1, 'only the honest image is recorded');
    } finally {
      await rm(root, { recursive: true, force: true });
    }
  });
});
