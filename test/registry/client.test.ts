/**
 * RegistryClient against hostile in-process mocks on loopback addresses.
 * The normal path against a real registry is tested elsewhere.
 */
import assert from 'node:assert/strict';
import { afterEach, describe, it } from 'node:test';
import { digestOf } from '../../src/digest.js';
import { DigestMismatchError, MinidockError, NotFoundError, RegistryError } from '../../src/errors.js';
import { MediaType, type Descriptor } from '../../src/image/index.js';
import { recordingLogger } from '../helpers/logger.js';
import { parseReference } from '../../src/reference.js';
import { RegistryClient, type RegistryClientOptions } from '../../src/registry/index.js';
import { sendError, startMock, type Handler, type MockServer } from './mock-server.js';

const fastRetry = { baseDelayMs: 5, maxDelayMs: 2000 };

// Every mock and client a test starts is closed after it.
const open: { close(): Promise<void> }[] = [];
afterEach(async () => {
  while (open.length > 0) await open.pop()!.close();
});

async function mock(handler: Handler, address?: string): Promise<MockServer> {
  const m = await startMock(handler, address);
  open.push(m);
  return m;
}

function client(options: RegistryClientOptions = {}): RegistryClient {
  const c = new RegistryClient({ retry: fastRetry, ...options });
  open.push(c);
  return c;
}


function descriptor(mediaType: string, bytes: Buffer, extra: Partial<Descriptor> = {}): Descriptor {
  return { mediaType, digest: digestOf(bytes), size: bytes.length, ...extra };
}

const config = Buffer.from(JSON.stringify({ architecture: 'amd64', os: 'linux', rootfs: { type: 'layers', diff_ids: [] } }));

function imageManifest(arch = 'amd64', withMediaType = true): Buffer {
  const m: Record<string, unknown> = {
    schemaVersion: 2,
    config: descriptor(MediaType.ociConfig, config, { annotations: { arch } }),
    layers: [],
  };
  if (withMediaType) m.mediaType = MediaType.ociManifest;
  return Buffer.from(JSON.stringify(m));
}

async function rejectsWith<T extends Error>(p: Promise<unknown>, check: (err: T) => void): Promise<void> {
  await assert.rejects(p, (err: T) => {
    check(err);
    return true;
  });
}

describe('RegistryClient bearer authentication', () => {
  it('fetches a token from the realm on another host and retries with it', async () => {
    const manifest = imageManifest();
    const tokenServer = await mock((req, res) => {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ access_token: 'tok-123', expires_in: 300 }));
    }, '127.0.0.2');
    const registry = await mock((req, res) => {
      if (req.headers.authorization !== 'Bearer tok-123') {
        res.writeHead(401, {
          'www-authenticate': `Bearer realm="${tokenServer.origin}/token",service="mock-registry",scope="repository:team/app:pull"`,
        });
        res.end();
        return;
      }
      res.writeHead(200, { 'content-type': MediaType.ociManifest });
      res.end(manifest);
    });
    const logger = recordingLogger();
    const c = client({ logger });
    const ref = parseReference(`${registry.host}/team/app:v1`);

    const got = await c.fetchManifest(ref, 'v1');
    assert.equal(got.digest, digestOf(manifest));
    assert.deepEqual(got.raw, manifest);

    // The token request: service and scope as query parameters, and no
    // Authorization header (the registry's or anyone's).
    assert.equal(tokenServer.requests.length, 1);
    const tokenUrl = new URL(tokenServer.requests[0]!.url, tokenServer.origin);
    assert.equal(tokenUrl.pathname, '/token');
    assert.equal(tokenUrl.searchParams.get('service'), 'mock-registry');
    assert.deepEqual(tokenUrl.searchParams.getAll('scope'), ['repository:team/app:pull']);
    assert.equal(tokenServer.requests[0]!.headers.authorization, undefined);

    // The registry: first without, then with the token.
    assert.deepEqual(
      registry.requests.map((r) => [r.url, r.headers.authorization]),
      [
        ['/v2/team/app/manifests/v1', undefined],
        ['/v2/team/app/manifests/v1', 'Bearer tok-123'],
      ],
    );
    assert.match(String(registry.requests[0]!.headers.accept), /application\/vnd\.oci\.image\.index\.v1\+json/);

    // A second request reuses the cached token: no new 401, no new token.
    await c.fetchManifest(ref, 'v1');
    assert.equal(tokenServer.requests.length, 1);
    assert.equal(registry.requests.length, 3);
    assert.equal(registry.requests[2]!.headers.authorization, 'Bearer tok-123');

    // Nothing logged carries the token.
    assert.ok(logger.lines.length > 0);
    assert.ok(logger.lines.every((l) => !l.includes('tok-123')), logger.lines.join('\n'));
  });

  it('accepts "token" and sends the challenge\'s own scopes too', async () => {
    const tokenServer = await mock((req, res) => {
      res.end(JSON.stringify({ token: 'tok-a', access_token: 'tok-b' }));
    });
    const manifest = imageManifest();
    const registry = await mock((req, res) => {
      if (req.headers.authorization !== 'Bearer tok-a') {
        res.writeHead(401, {
          'www-authenticate': `Bearer realm="${tokenServer.origin}/t",scope="repository:x/y:pull repository:other:pull"`,
        });
        res.end();
        return;
      }
      res.end(manifest);
    });
    const c = client();
    await c.fetchManifest(parseReference(`${registry.host}/x/y`), 'latest');
    const q = new URL(tokenServer.requests[0]!.url, tokenServer.origin).searchParams;
    assert.equal(q.get('service'), null);
    assert.deepEqual(q.getAll('scope').sort(), ['repository:other:pull', 'repository:x/y:pull']);
  });

  it('sends the credentials hook as Basic auth to the realm only', async () => {
    const tokenServer = await mock((req, res) => {
      res.end(JSON.stringify({ token: 'tok-c' }));
    });
    const registry = await mock((req, res) => {
      if (req.headers.authorization !== 'Bearer tok-c') {
        res.writeHead(401, { 'www-authenticate': `Bearer realm="${tokenServer.origin}/t",service="s"` });
        res.end();
        return;
      }
      res.end(imageManifest());
    });
    const asked: string[] = [];
    const c = client({
      credentials: (host) => {
        asked.push(host);
        return { username: 'alice', password: 's3cret' };
      },
    });
    await c.fetchManifest(parseReference(`${registry.host}/x/y`), 'latest');
    assert.deepEqual(asked, [registry.host]);
    assert.equal(tokenServer.requests[0]!.headers.authorization, `Basic ${Buffer.from('alice:s3cret').toString('base64')}`);
    assert.ok(registry.requests.every((r) => !String(r.headers.authorization ?? '').startsWith('Basic')));
  });

  it('answers a Basic challenge with the credentials hook', async () => {
    const want = `Basic ${Buffer.from('bob:pw').toString('base64')}`;
    const registry = await mock((req, res) => {
      if (req.headers.authorization !== want) {
        res.writeHead(401, { 'www-authenticate': 'Basic realm="mock"' });
        res.end();
        return;
      }
      res.end(imageManifest());
    });
    const c = client({ credentials: () => ({ username: 'bob', password: 'pw' }) });
    const got = await c.fetchManifest(parseReference(`${registry.host}/x/y`), 'latest');
    assert.equal(got.parsed.kind, 'manifest');
    assert.equal(registry.requests.length, 2);
  });

  it('shares one token request between concurrent 401s', async () => {
    const tokenServer = await mock((req, res) => res.end(JSON.stringify({ token: 'tok-s' })));
    const registry = await mock((req, res) => {
      if (req.headers.authorization !== 'Bearer tok-s') {
        res.writeHead(401, { 'www-authenticate': `Bearer realm="${tokenServer.origin}/t"` });
        res.end();
        return;
      }
      res.end(imageManifest());
    });
    const c = client();
    const ref = parseReference(`${registry.host}/x/y`);
    const got = await Promise.all([c.fetchManifest(ref, 'a'), c.fetchManifest(ref, 'b'), c.fetchManifest(ref, 'c')]);
    assert.equal(got.length, 3);
    assert.equal(tokenServer.requests.length, 1);
  });

  it('gives up after one retry when the token is refused', async () => {
    const tokenServer = await mock((req, res) => {
      res.end(JSON.stringify({ token: 'useless' }));
    });
    const registry = await mock((req, res) => {
      res.writeHead(401, { 'www-authenticate': `Bearer realm="${tokenServer.origin}/t"` });
      res.end(JSON.stringify({ errors: [{ code: 'UNAUTHORIZED', message: 'authentication required' }] }));
    });
    const c = client();
    await rejectsWith<RegistryError>(c.fetchManifest(parseReference(`${registry.host}/x/y`), 'latest'), (err) => {
      assert.ok(err instanceof RegistryError);
      assert.equal(err.status, 401);
      assert.deepEqual(err.errorCodes, ['UNAUTHORIZED']);
      assert.match(err.hint ?? '', /credentials/);
    });
    assert.equal(registry.requests.length, 2);
    assert.equal(tokenServer.requests.length, 1);
  });
});

describe('RegistryClient token lifetime and scope', () => {
  it('fetches a new token once expires_in has passed, mid-session', async () => {
    let issued = 0;
    const tokenServer = await mock((req, res) => {
      issued++;
      res.end(JSON.stringify({ token: `tok-${issued}`, expires_in: 60 }));
    });
    // The registry honours only the newest token, as one would once the
    // older one has expired.
    const registry = await mock((req, res) => {
      if (req.headers.authorization !== `Bearer tok-${issued}`) {
        res.writeHead(401, { 'www-authenticate': `Bearer realm="${tokenServer.origin}/t",service="s"` });
        res.end();
        return;
      }
      res.end(imageManifest());
    });
    let now = 1_000_000;
    const c = client({ now: () => now });
    const ref = parseReference(`${registry.host}/x/y`);
    await c.fetchManifest(ref, 'a');
    now += 30_000;
    await c.fetchManifest(ref, 'b');
    assert.equal(tokenServer.requests.length, 1, 'a live token is reused');

    now += 31_000;
    await c.fetchManifest(ref, 'c');
    assert.equal(tokenServer.requests.length, 2, 'an expired token is replaced');
    // The expired token was not sent: the request went out bare, got the
    // challenge, and was retried with the new token.
    assert.deepEqual(
      registry.requests.slice(-2).map((r) => r.headers.authorization),
      [undefined, 'Bearer tok-2'],
    );
  });

  it('answers insufficient_scope with one new token for the scope asked for, then stops', async () => {
    const scopes: string[][] = [];
    const tokenServer = await mock((req, res) => {
      const q = new URL(req.url!, 'http://x').searchParams.getAll('scope');
      scopes.push(q);
      res.end(JSON.stringify({ token: q.includes('repository:x/y:pull,push') ? 'tok-wide' : 'tok-narrow' }));
    });
    const challenge = (scope: string) =>
      `Bearer realm="${tokenServer.origin}/t",service="s",scope="${scope}",error="insufficient_scope"`;
    const registry = await mock((req, res) => {
      const auth = req.headers.authorization;
      const ok = req.url!.endsWith('/ok')
        ? auth === 'Bearer tok-wide' || auth === 'Bearer tok-narrow'
        : auth === 'Bearer tok-wide' && !req.url!.endsWith('/never');
      if (ok) {
        res.end(imageManifest());
        return;
      }
      const scope = req.url!.endsWith('/ok')
        ? 'repository:x/y:pull'
        : req.url!.endsWith('/never')
          ? 'repository:x/y:delete'
          : 'repository:x/y:pull,push';
      res.writeHead(401, { 'www-authenticate': challenge(scope) });
      res.end(JSON.stringify({ errors: [{ code: 'DENIED', message: 'insufficient scope' }] }));
    });
    const c = client();
    const ref = parseReference(`${registry.host}/x/y`);
    await c.fetchManifest(ref, 'ok');
    assert.equal(tokenServer.requests.length, 1);

    // The cached token is refused for this one: re-challenged once, with
    // the scope the challenge names, and the retry succeeds.
    await c.fetchManifest(ref, 'wider');
    assert.equal(tokenServer.requests.length, 2);
    assert.deepEqual(scopes[1]!.sort(), ['repository:x/y:pull', 'repository:x/y:pull,push']);

    // A registry that is never satisfied gets one re-challenge, not a loop.
    const before = registry.requests.length;
    await rejectsWith<RegistryError>(c.fetchManifest(ref, 'never'), (err) => {
      assert.equal(err.status, 401);
      assert.deepEqual(err.errorCodes, ['DENIED']);
    });
    assert.equal(registry.requests.length - before, 2);
    assert.equal(tokenServer.requests.length, 3);
  });
});

describe('RegistryClient manifest verification', () => {
  it('refuses a schema 1 manifest, by Content-Type or by its body, as too old', async () => {
    const schema1 = Buffer.from(JSON.stringify({ schemaVersion: 1, name: 'x/y', tag: 'latest', fsLayers: [] }));
    const registry = await mock((req, res) => {
      if (req.url!.endsWith('/typed')) res.setHeader('content-type', MediaType.dockerManifestSchema1Signed);
      res.end(schema1);
    });
    const c = client();
    for (const tag of ['typed', 'untyped']) {
      await rejectsWith<MinidockError>(c.fetchManifest(parseReference(`${registry.host}/x/y`), tag), (err) => {
        assert.equal(err.code, 'ERR_SCHEMA1');
        assert.match(err.message, /the image format is too old \(Docker image manifest schema 1/);
        assert.match(err.hint ?? '', /re-push/);
      });
    }
  });

  it('refuses bytes that do not match the digest reference', async () => {
    const good = imageManifest('amd64');
    const evil = imageManifest('evil');
    const registry = await mock((req, res) => {
      res.end(evil);
    });
    const c = client();
    const ref = parseReference(`${registry.host}/x/y@${digestOf(good)}`);
    await rejectsWith<DigestMismatchError>(c.fetchManifest(ref, ref.digest!), (err) => {
      assert.ok(err instanceof DigestMismatchError);
      assert.equal(err.expected, digestOf(good));
      assert.equal(err.actual, digestOf(evil));
    });
    assert.equal(registry.requests[0]!.url, `/v2/x/y/manifests/${digestOf(good)}`);
  });

  it('refuses a Docker-Content-Digest that disagrees with the digest reference', async () => {
    const good = imageManifest();
    const other = digestOf('something else');
    const registry = await mock((req, res) => {
      res.writeHead(200, { 'docker-content-digest': other, 'content-type': MediaType.ociManifest });
      res.end(good);
    });
    const c = client();
    await rejectsWith<DigestMismatchError>(c.fetchManifest(parseReference(`${registry.host}/x/y`), digestOf(good)), (err) => {
      assert.ok(err instanceof DigestMismatchError);
      assert.match(err.message, /Docker-Content-Digest/);
      assert.equal(err.actual, other);
    });
  });

  it('only warns about a disagreeing Docker-Content-Digest for a tag', async () => {
    const good = imageManifest();
    const registry = await mock((req, res) => {
      res.writeHead(200, { 'docker-content-digest': digestOf('x') });
      res.end(good);
    });
    const logger = recordingLogger();
    const got = await client({ logger }).fetchManifest(parseReference(`${registry.host}/x/y`), 'latest');
    assert.equal(got.digest, digestOf(good));
    assert.ok(logger.lines.some((l) => l.startsWith('warn ') && l.includes('Docker-Content-Digest')));
  });

  it('identifies the media type from the body when Content-Type is missing', async () => {
    const withType = imageManifest('amd64', true);
    const shapeOnly = Buffer.from(
      JSON.stringify({ schemaVersion: 2, manifests: [descriptor(MediaType.ociManifest, withType, { platform: { os: 'linux', architecture: 'amd64' } })] }),
    );
    const registry = await mock((req, res) => {
      // node:http adds no Content-Type of its own.
      res.end(req.url!.endsWith('/a') ? withType : shapeOnly);
    });
    const c = client();
    const a = await c.fetchManifest(parseReference(`${registry.host}/x/y`), 'a');
    assert.equal(a.mediaType, MediaType.ociManifest);
    assert.equal(a.parsed.kind, 'manifest');
    const b = await c.fetchManifest(parseReference(`${registry.host}/x/y`), 'b');
    assert.equal(b.mediaType, MediaType.ociIndex);
    assert.equal(b.parsed.kind, 'index');
    assert.equal(registry.requests[0]!.headers['content-type'], undefined);
  });

  it('prefers the body media type over Content-Type', async () => {
    const registry = await mock((req, res) => {
      res.writeHead(200, { 'content-type': MediaType.dockerManifest });
      res.end(imageManifest());
    });
    const got = await client().fetchManifest(parseReference(`${registry.host}/x/y`), 'latest');
    assert.equal(got.mediaType, MediaType.ociManifest);
  });

  it('refuses a manifest over 4 MiB, declared or streamed', async () => {
    const big = Buffer.alloc(4 * 1024 * 1024 + 1, 0x20);
    const registry = await mock((req, res) => {
      if (req.url!.endsWith('/declared')) {
        res.writeHead(200, { 'content-length': String(big.length) });
        res.end(big);
      } else {
        // Chunked: no length is announced; the client must stop reading.
        res.writeHead(200);
        res.write(big.subarray(0, 1024 * 1024));
        res.write(big.subarray(1024 * 1024, 3 * 1024 * 1024));
        res.end(big.subarray(3 * 1024 * 1024));
      }
    });
    const c = client();
    for (const tag of ['declared', 'streamed']) {
      await rejectsWith<MinidockError>(c.fetchManifest(parseReference(`${registry.host}/x/y`), tag), (err) => {
        assert.equal(err.code, 'ERR_TOO_LARGE');
        assert.match(err.message, /larger than the 4 MiB limit/);
      });
    }
  });
});

describe('RegistryClient retries and errors', () => {
  it('gives up on a manifest body trickled past the deadline, and on one cut short, with one line', async () => {
    const manifest = imageManifest();
    const timers: NodeJS.Timeout[] = [];
    const registry = await mock((req, res) => {
      res.writeHead(200, { 'content-type': MediaType.ociManifest, 'content-length': String(manifest.length) });
      if (req.url?.includes('/cut/')) {
        res.write(manifest.subarray(0, 10));
        timers.push(setTimeout(() => res.destroy(), 20));
        return;
      }
      // One byte every 50 ms: never idle long enough for a body timeout.
      let i = 0;
      const tick = () => {
        if (i >= manifest.length || res.destroyed) return;
        res.write(manifest.subarray(i, ++i));
        timers.push(setTimeout(tick, 50));
      };
      tick();
    });
    try {
      const c = client({ smallBodyDeadlineMs: 300 });
      await rejectsWith<MinidockError>(c.fetchManifest(parseReference(`${registry.host}/slow/y`), 'latest'), (err) => {
        assert.ok(err instanceof MinidockError);
        assert.match(err.message, /^read manifest .*slow\/y:latest: not complete after 0.3 s$/);
      });
      await rejectsWith<MinidockError>(c.fetchManifest(parseReference(`${registry.host}/cut/y`), 'latest'), (err) => {
        assert.ok(err instanceof MinidockError, String(err));
        assert.match(err.message, /^read manifest .*cut\/y:latest: /);
      });
    } finally {
      timers.forEach(clearTimeout);
    }
  });

  it('retries a 429 after Retry-After and succeeds', async () => {
    const manifest = imageManifest();
    let n = 0;
    const registry = await mock((req, res) => {
      if (n++ === 0) {
        res.writeHead(429, { 'retry-after': '1' });
        res.end();
        return;
      }
      res.end(manifest);
    });
    const logger = recordingLogger();
    const got = await client({ logger }).fetchManifest(parseReference(`${registry.host}/x/y`), 'latest');
    assert.equal(got.digest, digestOf(manifest));
    assert.equal(registry.requests.length, 2);
    // The Retry-After of 1 s was honoured, not the 5 ms backoff, and the
    // user is told, at warning level.
    assert.deepEqual(logger.lines.filter((l) => l.startsWith('warn ')), [
      `warn rate limited by ${registry.host}, retrying in 1s`,
    ]);
  });

  it('does not wait out a Retry-After longer than a minute', async () => {
    const registry = await mock((req, res) => {
      res.writeHead(429, { 'retry-after': '3600' });
      res.end();
    });
    const logger = recordingLogger();
    await rejectsWith<RegistryError>(
      client({ logger }).fetchManifest(parseReference(`${registry.host}/x/y`), 'latest'),
      (err) => {
        assert.ok(err instanceof RegistryError);
        assert.equal(err.status, 429);
        assert.match(err.message, /: 429 Too Many Requests$/);
      },
    );
    assert.equal(registry.requests.length, 1);
    assert.deepEqual(logger.lines.filter((l) => l.startsWith('warn ')), []);
  });

  it('gives up on 5xx after 3 tries in all, saying so before each retry', async () => {
    const registry = await mock((req, res) => sendError(res, 503, 'UNAVAILABLE', 'try later'));
    const logger = recordingLogger();
    await rejectsWith<RegistryError>(
      client({ logger }).fetchManifest(parseReference(`${registry.host}/x/y`), 'latest'),
      (err) => {
        assert.ok(err instanceof RegistryError);
        assert.equal(err.status, 503);
        assert.equal(err.temporary, true);
      },
    );
    assert.equal(registry.requests.length, 3);
    // Backoff doubles from 5 ms.
    assert.deepEqual(logger.lines.filter((l) => l.startsWith('warn ')), [
      `warn ${registry.host} answered 503 Service Unavailable, retrying in 0.01s`,
      `warn ${registry.host} answered 503 Service Unavailable, retrying in 0.01s`,
    ]);
  });

  it('does not retry a 404 and reports the manifest unknown', async () => {
    const registry = await mock((req, res) => sendError(res, 404, 'MANIFEST_UNKNOWN', 'manifest unknown'));
    const ref = parseReference(`${registry.host}/library/x:latest`);
    await rejectsWith<NotFoundError>(client().fetchManifest(ref, 'latest'), (err) => {
      assert.ok(err instanceof NotFoundError);
      assert.equal(err.code, 'ERR_NOT_FOUND');
      assert.equal(err.message, `resolve ${registry.host}/library/x:latest: manifest unknown`);
      assert.match(err.hint ?? '', /check the image name and tag/);
      const cause = err.cause as RegistryError;
      assert.ok(cause instanceof RegistryError);
      assert.equal(cause.status, 404);
      assert.deepEqual(cause.errorCodes, ['MANIFEST_UNKNOWN']);
      assert.equal(cause.method, 'GET');
      assert.equal(
        cause.message,
        `GET http://${registry.host}/v2/library/x/manifests/latest: 404 Not Found: manifest unknown`,
      );
    });
    assert.equal(registry.requests.length, 1);
  });

  it('reports a refused connection in one line naming the registry', async () => {
    // Bind a port, then free it, so nothing listens there.
    const gone = await startMock(() => {});
    await gone.close();
    await rejectsWith<RegistryError>(client().fetchManifest(parseReference(`${gone.host}/x/y`), 'latest'), (err) => {
      assert.ok(err instanceof MinidockError);
      assert.equal(err.message, `connect to registry ${gone.host}: connection refused`);
    });
  });

  it('stops when aborted', async () => {
    let arrived!: () => void;
    const requested = new Promise<void>((resolve) => (arrived = resolve));
    const registry = await mock(() => {
      // Never answers.
      arrived();
    });
    const ac = new AbortController();
    const p = client().fetchManifest(parseReference(`${registry.host}/x/y`), 'latest', { signal: ac.signal });
    await requested;
    ac.abort();
    await assert.rejects(p, (err: Error) => err.name === 'AbortError' || (err as { code?: string }).code === 'UND_ERR_ABORTED');
  });
});

describe('RegistryClient blobs', () => {
  const blob = Buffer.from('0123456789abcdef'.repeat(64));
  const blobDesc = descriptor(MediaType.ociLayerGzip, blob);

  it('follows a redirect to another host without sending Authorization there', async () => {
    const storage = await mock((req, res) => {
      res.writeHead(200, { 'content-length': String(blob.length) });
      res.end(blob);
    }, '127.0.0.2');
    const tokenServer = await mock((req, res) => res.end(JSON.stringify({ token: 'tok-r' })));
    const registry = await mock((req, res) => {
      if (req.headers.authorization !== 'Bearer tok-r') {
        res.writeHead(401, { 'www-authenticate': `Bearer realm="${tokenServer.origin}/t",service="s"` });
        res.end();
        return;
      }
      res.writeHead(307, { location: `${storage.origin}/bucket/${blobDesc.digest}?X-Amz-Signature=abc123` });
      res.end();
    });
    const logger = recordingLogger();
    const c = client({ logger });
    const opened = await c.openBlob(parseReference(`${registry.host}/x/y`), blobDesc);
    const chunks: Buffer[] = [];
    for await (const chunk of opened.body) chunks.push(chunk as Buffer);
    assert.deepEqual(Buffer.concat(chunks), blob);
    assert.equal(opened.offset, 0);
    assert.equal(opened.contentLength, blob.length);

    assert.equal(registry.requests.at(-1)!.headers.authorization, 'Bearer tok-r');
    assert.equal(storage.requests.length, 1);
    assert.equal(storage.requests[0]!.headers.authorization, undefined);
    assert.ok(logger.lines.every((l) => !l.includes('abc123') && !l.includes('tok-r')), logger.lines.join('\n'));
  });

  it('refuses more than 5 redirects', async () => {
    const registry = await mock((req, res) => {
      const n = Number(req.url!.split('/hop/')[1] ?? '0');
      res.writeHead(302, { location: `/hop/${n + 1}` });
      res.end();
    });
    await rejectsWith<RegistryError>(client().openBlob(parseReference(`${registry.host}/x/y`), blobDesc), (err) => {
      assert.ok(err instanceof RegistryError);
      assert.match(err.message, /more than 5 redirects/);
    });
    assert.equal(registry.requests.length, 6);
  });

  it('resumes from an offset with a 206', async () => {
    const registry = await mock((req, res) => {
      const start = Number(/^bytes=(\d+)-$/.exec(req.headers.range ?? '')?.[1]);
      res.writeHead(206, {
        'content-range': `bytes ${start}-${blob.length - 1}/${blob.length}`,
        'content-length': String(blob.length - start),
      });
      res.end(blob.subarray(start));
    });
    const opened = await client().openBlob(parseReference(`${registry.host}/x/y`), blobDesc, { offset: 100 });
    const chunks: Buffer[] = [];
    for await (const chunk of opened.body) chunks.push(chunk as Buffer);
    assert.equal(registry.requests[0]!.headers.range, 'bytes=100-');
    assert.equal(opened.offset, 100);
    assert.equal(opened.contentLength, blob.length - 100);
    assert.deepEqual(Buffer.concat(chunks), blob.subarray(100));
  });

  it('returns offset 0 when the server ignores Range', async () => {
    const registry = await mock((req, res) => res.end(blob));
    const opened = await client().openBlob(parseReference(`${registry.host}/x/y`), blobDesc, { offset: 100 });
    const chunks: Buffer[] = [];
    for await (const chunk of opened.body) chunks.push(chunk as Buffer);
    assert.equal(registry.requests[0]!.headers.range, 'bytes=100-');
    assert.equal(opened.offset, 0);
    assert.deepEqual(Buffer.concat(chunks), blob);
  });

  it('refuses a 206 that starts elsewhere', async () => {
    const registry = await mock((req, res) => {
      res.writeHead(206, { 'content-range': `bytes 0-${blob.length - 1}/${blob.length}` });
      res.end(blob);
    });
    await rejectsWith<RegistryError>(
      client().openBlob(parseReference(`${registry.host}/x/y`), blobDesc, { offset: 100 }),
      (err) => assert.match(err.message, /does not start at byte 100/),
    );
  });

  it('fetches a small blob and verifies it', async () => {
    const registry = await mock((req, res) => res.end(req.url!.includes(digestOf(config)) ? config : Buffer.from('{"wrong":1}')));
    const c = client();
    const ref = parseReference(`${registry.host}/x/y`);
    const got = await c.fetchSmallBlob(ref, descriptor(MediaType.ociConfig, config));
    assert.deepEqual(got, config);

    const claimed = Buffer.from('{"right":1}');
    await rejectsWith<DigestMismatchError>(c.fetchSmallBlob(ref, descriptor(MediaType.ociConfig, claimed)), (err) => {
      assert.ok(err instanceof DigestMismatchError);
      assert.equal(err.expected, digestOf(claimed));
      assert.equal(err.actual, digestOf('{"wrong":1}'));
    });
  });

  it('refuses a small blob whose descriptor says it is over 4 MiB, before asking', async () => {
    const registry = await mock((req, res) => res.end());
    const d: Descriptor = { mediaType: MediaType.ociConfig, digest: digestOf('x'), size: 5 * 1024 * 1024 };
    await rejectsWith<MinidockError>(client().fetchSmallBlob(parseReference(`${registry.host}/x/y`), d), (err) => {
      assert.equal(err.code, 'ERR_TOO_LARGE');
    });
    assert.equal(registry.requests.length, 0);
  });
});

describe('RegistryClient.resolve', () => {
  const amd64 = imageManifest('amd64');
  const arm64 = imageManifest('arm64');
  const attestation = imageManifest('attestation');
  const index = Buffer.from(
    JSON.stringify({
      schemaVersion: 2,
      mediaType: MediaType.ociIndex,
      manifests: [
        descriptor(MediaType.ociManifest, attestation, {
          platform: { os: 'unknown', architecture: 'unknown' },
          annotations: { 'vnd.docker.reference.type': 'attestation-manifest' },
        }),
        descriptor(MediaType.ociManifest, arm64, { platform: { os: 'linux', architecture: 'arm64', variant: 'v8' } }),
        descriptor(MediaType.ociManifest, amd64, { platform: { os: 'linux', architecture: 'amd64' } }),
      ],
    }),
  );
  const blobs = new Map<string, Buffer>([
    [digestOf(amd64), amd64],
    [digestOf(arm64), arm64],
    [digestOf(attestation), attestation],
  ]);

  async function indexRegistry(): Promise<MockServer> {
    return mock((req, res) => {
      const ref = req.url!.split('/manifests/')[1]!;
      const body = ref === 'latest' ? index : blobs.get(ref);
      if (body === undefined) return sendError(res, 404, 'MANIFEST_UNKNOWN', 'manifest unknown');
      res.writeHead(200, { 'content-type': ref === 'latest' ? MediaType.ociIndex : MediaType.ociManifest });
      res.end(body);
    });
  }

  it('follows an index to the platform\'s entry, skipping the attestation', async () => {
    const registry = await indexRegistry();
    const got = await client().resolve(parseReference(`${registry.host}/x/y`), { os: 'linux', architecture: 'amd64' });
    assert.equal(got.manifestDigest, digestOf(amd64));
    assert.deepEqual(got.rawManifest, amd64);
    assert.equal(got.manifest.config.annotations?.arch, 'amd64');
    assert.equal(got.indexDigest, digestOf(index));
    assert.deepEqual(got.rawIndex, index);
    assert.equal(got.mediaType, MediaType.ociManifest);
    assert.deepEqual(
      registry.requests.map((r) => r.url),
      ['/v2/x/y/manifests/latest', `/v2/x/y/manifests/${digestOf(amd64)}`],
    );

    const arm = await client().resolve(parseReference(`${registry.host}/x/y`), { os: 'linux', architecture: 'arm64' });
    assert.equal(arm.manifestDigest, digestOf(arm64));
  });

  it('lists the platforms offered when none matches', async () => {
    const registry = await indexRegistry();
    await rejectsWith<MinidockError>(
      client().resolve(parseReference(`${registry.host}/x/y`), { os: 'linux', architecture: 's390x' }),
      (err) => {
        assert.ok(err instanceof MinidockError);
        assert.equal(err.message, 'no matching manifest for linux/s390x in the manifest list entries: linux/arm64/v8, linux/amd64');
      },
    );
    assert.equal(registry.requests.length, 1);
  });

  it('returns a plain manifest as it is', async () => {
    const registry = await mock((req, res) => res.end(amd64));
    const got = await client().resolve(parseReference(`${registry.host}/x/y:v2`), { os: 'linux', architecture: 'amd64' });
    assert.equal(got.manifestDigest, digestOf(amd64));
    assert.equal(got.indexDigest, undefined);
    assert.equal(registry.requests[0]!.url, '/v2/x/y/manifests/v2');
  });
});
