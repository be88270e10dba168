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

// cut: every answer is cut after half the body, Range ignored.
// reset-once: the first answer is cut after half; later ones honour Range.
// reset-ignore-range: the first answer is cut after half; later ones send
// the whole body with 200, whatever Range asked for.
// dribble: every answer honours Range but is cut after 100 bytes.
type BlobMode = 'ok' | 'too-long' | 'endless' | 'cut' | 'reset-once' | 'reset-ignore-range' | 'dribble';

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
        const first = mock.requestsTo(req.url!).length === 1;
        const range = /^bytes=(\d+)-$/.exec(req.headers.range ?? '');
        if (mode === 'dribble') {
          const start = Number(range?.[1] ?? 0);
          res.writeHead(range ? 206 : 200, {
            ...(range ? { 'Content-Range': `bytes ${start}-${blob.length - 1}/${blob.length}` } : {}),
            'Content-Length': String(blob.length - start),
          });
          res.write(blob.subarray(start, start + 100));
          setTimeout(() => res.destroy(), 20);
        } else if (mode === 'reset-once' && !first && range) {
          const start = Number(range[1]);
          res.writeHead(206, {
            'Content-Range': `bytes ${start}-${blob.length - 1}/${blob.length}`,
            'Content-Length': String(blob.length - start),
          });
          res.end(blob.subarray(start));
        } else if (mode === 'reset-ignore-range' && !first) {
          res.end(blob);
        } else {
          res.setHeader('Content-Length', String(blob.length));
          res.write(blob.subarray(0, blob.length >> 1));
          setTimeout(() => res.destroy(), 20);
        }
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
  const assertBlobsVerify = async (store: Store) => {
    const blobs = await readdir(store.path('blobs', 'sha256'));
    for (const hex of blobs) {
      assert.equal(createHash('sha256').update(await readFile(store.path('blobs', 'sha256', hex))).digest('hex'), hex);
    }
    return blobs;
  };
  const assertNothingLeft = async (store: Store, bad: Digest, tmp: string[] = []) => {
    const blobs = await assertBlobsVerify(store);
    assert.ok(!blobs.includes(bad.slice(7)), 'the layer blob is not stored');
    assert.deepEqual(await readdir(store.path('layers')), []);
    assert.deepEqual(await readdir(store.path('tmp')), tmp);
    assert.deepEqual(await readdir(store.path('images')), []);
  };
  const fastRetry = { registry: { retry: { baseDelayMs: 5 } } };

  for (const mode of ['too-long', 'endless'] as const) {
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

  test('keeps a layer cut short on every try as a partial download, which the next pull resumes', async () => {
    const image = await makeImage({ 'big.bin': 'x'.repeat(64 * 1024) + Math.random() });
    const layer = digestOf(image.layer);
    const half = image.layer.length >> 1;
    images.set('cut/app', image);
    modes.set('cut/app', 'cut');
    const store = await freshStore();
    try {
      await assert.rejects(pullImage(store, parseReference(`${mock.host}/cut/app:latest`), fastRetry), (err: unknown) => {
        assert.ok(err instanceof MinidockError, `a MinidockError, got ${String(err)}`);
        assert.match(err.message, new RegExp(layer));
        return true;
      });
      // Four tries: the first brings half the blob, three bring nothing new.
      const layerRequests = mock.requestsTo(`/v2/cut/app/blobs/${layer}`);
      assert.deepEqual(
        layerRequests.map((r) => r.headers.range),
        [undefined, `bytes=${half}-`, `bytes=${half}-`, `bytes=${half}-`],
      );
      const partialName = `partial-sha256-${layer.slice(7)}`;
      await assertNothingLeft(store, layer, [partialName]);
      assert.deepEqual(await readFile(store.path('tmp', partialName)), image.layer.subarray(0, half));

      // The next pull asks only for the rest.
      modes.set('cut/app', 'reset-once');
      const before = layerRequests.length;
      await pullImage(store, parseReference(`${mock.host}/cut/app:latest`), fastRetry);
      assert.deepEqual(
        mock.requestsTo(`/v2/cut/app/blobs/${layer}`).slice(before).map((r) => r.headers.range),
        [`bytes=${half}-`],
      );
      assert.ok((await assertBlobsVerify(store)).includes(layer.slice(7)));
      assert.deepEqual(await readdir(store.path('tmp')), []);
    } finally {
      await rm(root, { recursive: true, force: true });
    }
  });

  for (const mode of ['reset-once', 'reset-ignore-range'] as const) {
    test(`resumes a layer after a mid-blob reset (${mode})`, async () => {
      const image = await makeImage({ 'big.bin': 'y'.repeat(64 * 1024) + mode });
      const layer = digestOf(image.layer);
      const repo = `resume/${mode}`;
      images.set(repo, image);
      modes.set(repo, mode);
      const store = await freshStore();
      try {
        const result = await pullImage(store, parseReference(`${mock.host}/${repo}:latest`), fastRetry);
        const requests = mock.requestsTo(`/v2/${repo}/blobs/${layer}`);
        assert.deepEqual(
          requests.map((r) => r.headers.range),
          [undefined, `bytes=${image.layer.length >> 1}-`],
        );
        // Whether the server honoured Range or sent the whole body again,
        // the stored blob is the blob: the repeated half was not appended.
        assert.deepEqual(await readFile(store.path('blobs', 'sha256', layer.slice(7))), image.layer);
        assert.equal(result.record.layers[0]!.digest, layer);
        assert.equal(
          await readFile(store.path('layers', image.diffID.slice(7), 'diff', 'big.bin'), 'utf8'),
          'y'.repeat(64 * 1024) + mode,
        );
        assert.deepEqual(await readdir(store.path('tmp')), []);
      } finally {
        await rm(root, { recursive: true, force: true });
      }
    });
  }

  test('stops resuming after 20 resumes, however much each brought', async () => {
    const { randomBytes } = await import('node:crypto');
    const image = await makeImage({ 'noise.bin': randomBytes(8192).toString('latin1') });
    const layer = digestOf(image.layer);
    images.set('dribble/app', image);
    modes.set('dribble/app', 'dribble');
    const store = await freshStore();
    try {
      await assert.rejects(pullImage(store, parseReference(`${mock.host}/dribble/app:latest`), fastRetry), MinidockError);
      const ranges = mock.requestsTo(`/v2/dribble/app/blobs/${layer}`).map((r) => r.headers.range);
      assert.equal(ranges.length, 21);
      assert.deepEqual(ranges.slice(0, 3), [undefined, 'bytes=100-', 'bytes=200-']);
      // What came is kept for the next pull.
      const partial = await readFile(store.path('tmp', `partial-sha256-${layer.slice(7)}`));
      assert.deepEqual(partial, image.layer.subarray(0, 2100));
    } finally {
      await rm(root, { recursive: true, force: true });
    }
  });

  test('throws away a partial download that does not verify and fetches the blob again', async () => {
    const image = await makeImage({ 'f.txt': 'z'.repeat(32 * 1024) });
    const layer = digestOf(image.layer);
    images.set('stale/partial', image);
    modes.set('stale/partial', 'reset-once');
    const store = await freshStore();
    try {
      // A partial file of the right length but the wrong bytes, as a
      // power loss can leave behind.
      const { writeFile } = await import('node:fs/promises');
      await writeFile(store.path('tmp', `partial-sha256-${layer.slice(7)}`), Buffer.alloc(100, 0));
      await pullImage(store, parseReference(`${mock.host}/stale/partial:latest`), fastRetry);
      // reset-once cuts the first answer, so the fresh download itself resumes once more.
      const ranges = mock.requestsTo(`/v2/stale/partial/blobs/${layer}`).map((r) => r.headers.range);
      assert.equal(ranges[0], 'bytes=100-');
      assert.ok(ranges.slice(1).includes(undefined), `a fresh download follows: ${JSON.stringify(ranges)}`);
      assert.deepEqual(await readFile(store.path('blobs', 'sha256', layer.slice(7))), image.layer);
      assert.deepEqual(await readdir(store.path('tmp')), []);
    } finally {
      await rm(root, { recursive: true, force: true });
    }
  });

  test('a partial download that holds the whole blob is verified and kept, with no request for its bytes', async () => {
    const image = await makeImage({ 'whole.txt': 'w'.repeat(16 * 1024) });
    const layer = digestOf(image.layer);
    images.set('whole/partial', image);
    const store = await freshStore();
    try {
      // What a pull killed between its last write and its rename leaves.
      const { writeFile } = await import('node:fs/promises');
      await writeFile(store.path('tmp', `partial-sha256-${layer.slice(7)}`), image.layer);
      await pullImage(store, parseReference(`${mock.host}/whole/partial:latest`), fastRetry);
      assert.deepEqual(mock.requestsTo(`/v2/whole/partial/blobs/${layer}`), []);
      assert.deepEqual(await readFile(store.path('blobs', 'sha256', layer.slice(7))), image.layer);
      assert.deepEqual(await readdir(store.path('tmp')), []);
    } finally {
      await rm(root, { recursive: true, force: true });
    }
  });

  test('a blob listed twice under two diffIDs is downloaded by one job at a time, and stored whole', async () => {
    const { randomBytes } = await import('node:crypto');
    const base = await makeImage({ 'big.bin': randomBytes(2 << 20).toString('base64') });
    const layer = digestOf(base.layer);
    const bogus = digestOf(Buffer.from('not this layer'));
    const config = Buffer.from(
      JSON.stringify({ architecture: 'amd64', os: 'linux', rootfs: { type: 'layers', diff_ids: [base.diffID, bogus] } }),
    );
    const descriptor = { mediaType: MediaType.ociLayerGzip, digest: layer, size: base.layer.length };
    const manifest = Buffer.from(
      JSON.stringify({
        schemaVersion: 2,
        mediaType: MediaType.ociManifest,
        config: { mediaType: MediaType.ociConfig, digest: digestOf(config), size: config.length },
        layers: [descriptor, descriptor],
      }),
    );
    images.set('twice/listed', { manifest, blobs: new Map([[digestOf(config), config], [layer, base.layer]]) });
    const store = await freshStore();
    try {
      await assert.rejects(pullImage(store, parseReference(`${mock.host}/twice/listed:latest`)), /diffID of layer/);
      const blobs = await assertBlobsVerify(store);
      assert.ok(blobs.includes(layer.slice(7)), 'the blob verified by the honest job is stored');
      assert.deepEqual(await readdir(store.path('images')), []);
    } finally {
      await rm(root, { recursive: true, force: true });
    }
  });

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
