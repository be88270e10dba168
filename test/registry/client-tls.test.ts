/**
 * RegistryClient's extraCaCertsFile: the CAs of NODE_EXTRA_CA_CERTS, which
 * bin/minidock.js hands over instead of letting Node load them at start-up.
 * A registry on loopback speaks plain http, so the TLS end is blob storage
 * it redirects to: an https server on 127.0.0.1 whose self-signed
 * certificate (made by openssl for this test) no bundled CA trusts.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:https';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { digestOf } from '../../src/digest.js';
import { MediaType } from '../../src/image/index.js';
import { parseReference } from '../../src/reference.js';
import { RegistryClient } from '../../src/registry/index.js';
import { recordingLogger } from '../helpers/logger.js';
import { startMock, type MockServer } from './mock-server.js';

const blob = Buffer.from('tls blob '.repeat(100));
const desc = { mediaType: MediaType.ociLayerGzip, digest: digestOf(blob), size: blob.length };

describe('RegistryClient extra CAs', () => {
  let dir: string;
  let storage: ReturnType<typeof createServer>;
  let registry: MockServer;

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'minidock-tls-'));
    execFileSync('openssl', [
      'req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-days', '1', '-subj', '/CN=127.0.0.1',
      '-addext', 'subjectAltName=IP:127.0.0.1', '-keyout', join(dir, 'key.pem'), '-out', join(dir, 'cert.pem'),
    ], { stdio: 'ignore' });
    storage = createServer({ key: readFileSync(join(dir, 'key.pem')), cert: readFileSync(join(dir, 'cert.pem')) }, (req, res) => {
      res.writeHead(200, { 'content-length': String(blob.length) });
      res.end(blob);
    });
    await new Promise<void>((resolve) => storage.listen(0, '127.0.0.1', resolve));
    const port = (storage.address() as AddressInfo).port;
    registry = await startMock((req, res) => {
      res.writeHead(307, { location: `https://127.0.0.1:${port}/bucket/${desc.digest}` });
      res.end();
    });
  });

  after(async () => {
    await registry?.close();
    storage?.closeAllConnections();
    await new Promise((resolve) => storage?.close(resolve));
    rmSync(dir, { recursive: true, force: true });
  });

  async function fetchBlob(client: RegistryClient): Promise<Buffer> {
    try {
      const opened = await client.openBlob(parseReference(`${registry.host}/x/y`), desc);
      const chunks: Buffer[] = [];
      for await (const chunk of opened.body) chunks.push(chunk as Buffer);
      return Buffer.concat(chunks);
    } finally {
      await client.close();
    }
  }

  it('refuses the self-signed storage without the file', async () => {
    const client = new RegistryClient({ retry: { tries: 1 } });
    await assert.rejects(fetchBlob(client), /certificate/);
  });

  it('trusts the CAs of extraCaCertsFile', async () => {
    const client = new RegistryClient({ retry: { tries: 1 }, extraCaCertsFile: join(dir, 'cert.pem') });
    assert.deepEqual(await fetchBlob(client), blob);
  });

  it('warns about a file it cannot use, and trusts the bundled CAs only', async () => {
    const bad = join(dir, 'not-a-cert.pem');
    writeFileSync(bad, 'not a certificate\n');
    for (const file of [bad, join(dir, 'missing.pem')]) {
      const logger = recordingLogger();
      const client = new RegistryClient({ retry: { tries: 1 }, extraCaCertsFile: file, logger });
      await assert.rejects(fetchBlob(client), /certificate/);
      assert.ok(logger.lines.some((l) => l.includes(`ignoring extra CA certificates from ${JSON.stringify(file)}`)), logger.lines.join('\n'));
    }
  });
});
