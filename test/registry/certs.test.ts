/**
 * certs.d: per-registry CAs and client certificates in Docker's layout,
 * against the real registry serving TLS on 127.0.0.1 and requiring a
 * client certificate. Keys and certificates are made with openssl.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { copyFile, mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { after, before, describe, test } from 'node:test';
import { MinidockError } from '../../src/errors.js';
import { pullImage } from '../../src/pull/index.js';
import { parseReference } from '../../src/reference.js';
import { CertsDir } from '../../src/registry/certs.js';
import { Store } from '../../src/store/index.js';
import { makeTestRoot, runCli } from '../helpers/cli.js';
import { fixtureLayouts } from '../helpers/fixtures.js';
import { missingTools, startRegistry, type TestRegistry } from '../helpers/registry.js';

const execFileAsync = promisify(execFile);
const openssl = (...args: string[]) => execFileAsync('openssl', args);

const noOpenssl = existsSync('/usr/bin/openssl') ? false : 'needs /usr/bin/openssl (Debian package openssl)';
const skip =
  missingTools() || noOpenssl || (process.getuid?.() !== 0 ? 'needs root (pull unpacks layers with their owners)' : false);

/** Makes a CA, a server certificate for 127.0.0.1 and a client certificate, all signed by the CA. */
async function makePKI(dir: string): Promise<void> {
  await openssl(
    'req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-sha256', '-days', '2',
    '-subj', '/CN=minidock test CA', '-keyout', join(dir, 'ca.key'), '-out', join(dir, 'ca.crt'),
    '-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign,cRLSign',
  );
  for (const [name, cn, ext] of [
    ['server', '127.0.0.1', 'subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth\n'],
    ['client', 'minidock test client', 'extendedKeyUsage=clientAuth\n'],
  ] as const) {
    await writeFile(join(dir, `${name}.ext`), ext);
    await openssl(
      'req', '-newkey', 'rsa:2048', '-nodes', '-subj', `/CN=${cn}`,
      '-keyout', join(dir, `${name}.key`), '-out', join(dir, `${name}.csr`),
    );
    await openssl(
      'x509', '-req', '-sha256', '-days', '2', '-in', join(dir, `${name}.csr`),
      '-CA', join(dir, 'ca.crt'), '-CAkey', join(dir, 'ca.key'), '-CAcreateserial',
      '-extfile', join(dir, `${name}.ext`), '-out', join(dir, `${name}.crt`),
    );
  }
}

describe('CertsDir', { skip: noOpenssl }, () => {
  let dir: string;
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'minidock-certsd-'));
    await makePKI(dir);
  });
  after(async () => {
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  const entry = async (root: string, host: string, files: Record<string, string>) => {
    await mkdir(join(root, host), { recursive: true });
    for (const [name, from] of Object.entries(files)) await copyFile(join(dir, from), join(root, host, name));
  };

  test('reads CAs after the system ones, and the client certificate with its key; 443 is left out of the name', async () => {
    const root = join(dir, 'd1');
    await entry(root, 'registry.example', { 'ca.crt': 'ca.crt', 'client.cert': 'client.crt', 'client.key': 'client.key' });
    const certs = new CertsDir(root, join(dir, 'no-system-bundle'));
    const tls = certs.forHost('registry.example:443');
    assert.ok(tls);
    assert.ok(tls.ca.length > 1, 'system roots come first');
    assert.match(tls.ca.at(-1)!, /BEGIN CERTIFICATE/);
    assert.match(tls.cert ?? '', /BEGIN CERTIFICATE/);
    assert.match(tls.key ?? '', /PRIVATE KEY/);
    assert.equal(certs.forHost('other.example'), undefined);
    assert.equal(certs.has('registry.example:5000'), false);
  });

  test('refuses a client certificate without its key, and a key without its certificate', async () => {
    const root = join(dir, 'd2');
    await entry(root, 'a.example', { 'client.cert': 'client.crt' });
    await entry(root, 'b.example', { 'client.key': 'client.key' });
    const certs = new CertsDir(root);
    assert.throws(() => certs.forHost('a.example'), (err: MinidockError) => {
      assert.equal(err.code, 'ERR_CERTS');
      assert.match(err.message, /client certificate ".*a\.example\/client\.cert" has no key client\.key/);
      return true;
    });
    assert.throws(() => certs.forHost('b.example'), /key ".*b\.example\/client\.key" has no client certificate client\.cert/);
  });
});

describe('pull from a registry serving TLS with client certificates (certs.d)', { skip }, () => {
  let dir: string;
  let registry: TestRegistry;
  const roots: string[] = [];
  const freshRoot = () => {
    const r = makeTestRoot();
    roots.push(r);
    return r;
  };
  /** A certs.d root whose entry for the registry holds the given files. */
  const certsDir = async (name: string, files: Record<string, string>) => {
    const root = join(dir, name);
    await mkdir(join(root, registry.host), { recursive: true });
    for (const [to, from] of Object.entries(files)) await copyFile(join(dir, from), join(root, registry.host, to));
    return root;
  };
  const pull = async (certs: string) =>
    pullImage(await Store.open(freshRoot()), parseReference(`${registry.host}/library/busybox:latest`), {
      registry: { certsDir: certs, retry: { tries: 1 } },
    });

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'minidock-tls-'));
    await makePKI(dir);
    // What skopeo pushes with: the same layout, not keyed by host.
    const bundle = join(dir, 'bundle');
    await mkdir(bundle);
    await copyFile(join(dir, 'ca.crt'), join(bundle, 'ca.crt'));
    await copyFile(join(dir, 'client.crt'), join(bundle, 'client.cert'));
    await copyFile(join(dir, 'client.key'), join(bundle, 'client.key'));
    registry = await startRegistry({
      tls: {
        certPath: join(dir, 'server.crt'),
        keyPath: join(dir, 'server.key'),
        clientCAPath: join(dir, 'ca.crt'),
        certDir: bundle,
      },
    });
    await registry.push(join(await fixtureLayouts(), 'busybox'), 'library/busybox', 'latest');
  });

  after(async () => {
    await registry?.stop();
    if (dir) await rm(dir, { recursive: true, force: true });
    for (const r of roots) await rm(r, { recursive: true, force: true });
  });

  test('pulls over https with the CA and client certificate from certs.d', async () => {
    const certs = await certsDir('full', { 'ca.crt': 'ca.crt', 'client.cert': 'client.crt', 'client.key': 'client.key' });
    const result = await pull(certs);
    assert.equal(result.record.layers.length, 1);
  });

  test('refuses the server certificate without the CA', async () => {
    const certs = await certsDir('no-ca', { 'client.cert': 'client.crt', 'client.key': 'client.key' });
    await assert.rejects(pull(certs), (err: unknown) => {
      assert.ok(err instanceof MinidockError, String(err));
      assert.equal(err.message, `connect to registry ${registry.host}: tls: unable to verify the first certificate`);
      assert.match(err.hint ?? '', new RegExp(`certs\\.d/${registry.host}/`));
      return true;
    });
  });

  test('is refused by the registry without a client certificate', async () => {
    const certs = await certsDir('no-client', { 'ca.crt': 'ca.crt' });
    await assert.rejects(pull(certs), (err: unknown) => {
      assert.ok(err instanceof MinidockError, String(err));
      // Under TLS 1.3 the server checks the client's certificate after the
      // handshake and hangs up; undici sees only the closed connection.
      assert.equal(err.message, `connect to registry ${registry.host}: connection closed unexpectedly`);
      return true;
    });
  });

  test('the CLI takes the certs.d root from minidock\'s config', async () => {
    const certs = await certsDir('cli', { 'ca.crt': 'ca.crt', 'client.cert': 'client.crt', 'client.key': 'client.key' });
    const config = join(dir, 'config.json');
    await writeFile(config, JSON.stringify({ 'certs-dir': certs }));
    const image = `${registry.host}/library/busybox:latest`;
    const r = await runCli(['--config', config, 'pull', image], { root: freshRoot() });
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout, `${image}\n`);
  });
});
