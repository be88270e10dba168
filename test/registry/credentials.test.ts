/**
 * CredentialStore: Docker config.json shapes, credential helpers (a fake
 * docker-credential-test on a PATH of the test's own), writes that keep
 * what they do not know, and secrets kept out of logs and errors.
 */
import assert from 'node:assert/strict';
import { chmod, mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { MinidockError } from '../../src/errors.js';
import { recordingLogger } from '../helpers/logger.js';
import { parseReference } from '../../src/reference.js';
import {
  CredentialStore,
  RegistryClient,
  normalizeServer,
  type Credentials,
} from '../../src/registry/index.js';
import { startMock } from './mock-server.js';

const b64 = (s: string) => Buffer.from(s, 'utf8').toString('base64');

let dir: string;
let n = 0;

before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'minidock-credentials-'));
});
after(async () => {
  await rm(dir, { recursive: true, force: true });
});

/** Writes config (an object, or raw text) to a fresh config.json and returns its path. */
async function configFile(config: unknown): Promise<string> {
  const path = join(dir, `config-${++n}.json`);
  await writeFile(path, typeof config === 'string' ? config : JSON.stringify(config));
  return path;
}


describe('normalizeServer', () => {
  const cases: [string, string][] = [
    ['https://index.docker.io/v1/', 'docker.io'],
    ['index.docker.io', 'docker.io'],
    ['registry-1.docker.io', 'docker.io'],
    ['docker.io', 'docker.io'],
    ['127.0.0.1:5000', '127.0.0.1:5000'],
    ['http://127.0.0.1:5000/v2/', '127.0.0.1:5000'],
    ['Registry.Example:443', 'registry.example:443'],
  ];
  for (const [input, want] of cases) {
    it(`maps ${JSON.stringify(input)} to ${want}`, () => assert.equal(normalizeServer(input), want));
  }
});

describe('CredentialStore.get over config.json shapes', () => {
  const cases: { name: string; config: unknown; host: string; want: Credentials | undefined }[] = [
    {
      name: 'a plain host:port entry with auth',
      config: { auths: { '127.0.0.1:5000': { auth: b64('alice:pw') } } },
      host: '127.0.0.1:5000',
      want: { username: 'alice', password: 'pw' },
    },
    {
      name: 'a password holding colons',
      config: { auths: { '127.0.0.1:5000': { auth: b64('alice:p:w:') } } },
      host: '127.0.0.1:5000',
      want: { username: 'alice', password: 'p:w:' },
    },
    {
      name: "Docker Hub's v1 URL key for docker.io",
      config: { auths: { 'https://index.docker.io/v1/': { auth: b64('hub:pw') } } },
      host: 'docker.io',
      want: { username: 'hub', password: 'pw' },
    },
    {
      name: 'a key with scheme and path for a plain host',
      config: { auths: { 'https://127.0.0.1:5000/v1/': { auth: b64('bob:pw') } } },
      host: '127.0.0.1:5000',
      want: { username: 'bob', password: 'pw' },
    },
    {
      name: 'an identity token',
      config: { auths: { '127.0.0.1:5000': { identitytoken: 'refresh-me' } } },
      host: '127.0.0.1:5000',
      want: { username: '', password: '', identityToken: 'refresh-me' },
    },
    {
      name: 'an entry for another port',
      config: { auths: { '127.0.0.1:5001': { auth: b64('alice:pw') } } },
      host: '127.0.0.1:5000',
      want: undefined,
    },
    {
      name: 'an empty entry (as Docker leaves beside a helper)',
      config: { auths: { '127.0.0.1:5000': {} } },
      host: '127.0.0.1:5000',
      want: undefined,
    },
    { name: 'no auths at all', config: { proxies: {} }, host: '127.0.0.1:5000', want: undefined },
    { name: 'an empty file', config: '', host: '127.0.0.1:5000', want: undefined },
  ];
  for (const c of cases) {
    it(`reads ${c.name}`, async () => {
      const store = new CredentialStore({ configPath: await configFile(c.config), env: {} });
      assert.deepEqual(await store.get(c.host), c.want);
    });
  }

  it('treats a missing config.json as no credentials', async () => {
    const store = new CredentialStore({ configPath: join(dir, 'absent', 'config.json'), env: {} });
    assert.equal(await store.get('127.0.0.1:5000'), undefined);
  });

  const bad: { name: string; config: unknown; want: RegExp }[] = [
    { name: 'text that is not JSON', config: '{"auths": {"h": {"auth": "c2VjcmV0"', want: /not valid JSON$/ },
    { name: 'a JSON array', config: '[]', want: /not a JSON object$/ },
    { name: 'auth that is not base64', config: { auths: { h: { auth: 'no way!' } } }, want: /"auth" is not base64$/ },
    { name: 'auth without a colon', config: { auths: { h: { auth: b64('justauser') } } }, want: /user:password$/ },
    { name: 'a helper name with a slash', config: { credsStore: '../evil' }, want: /helper name "..\/evil" is not valid$/ },
  ];
  for (const c of bad) {
    it(`refuses ${c.name}, quoting no secret`, async () => {
      const store = new CredentialStore({ configPath: await configFile(c.config), env: {} });
      await assert.rejects(store.get('h'), (err: unknown) => {
        assert.ok(err instanceof MinidockError);
        assert.equal(err.code, 'ERR_CONFIG');
        assert.match(err.message, c.want);
        assert.ok(!err.message.includes('c2VjcmV0') && !err.message.includes('justauser'));
        return true;
      });
    });
  }
});

describe('CredentialStore with a credential helper', () => {
  let binDir: string;
  let helperLog: string;
  let env: NodeJS.ProcessEnv;

  // The fake helper: `get` answers for 127.0.0.1:5000 and Docker Hub, says
  // "not found" otherwise; `store` and `erase` append their input to a log.
  // Server "127.0.0.1:6666" makes it fail with an error message, and
  // "127.0.0.1:7777" makes it print a secret that is not JSON.
  before(async () => {
    binDir = await mkdtemp(join(tmpdir(), 'minidock-cred-helper-'));
    helperLog = join(binDir, 'log');
    const script = [
      '#!/bin/sh',
      'input=$(cat)',
      `echo "$1 $input" >> ${JSON.stringify(helperLog)}`,
      'case "$1:$input" in',
      '  get:127.0.0.1:5000) echo \'{"ServerURL":"127.0.0.1:5000","Username":"helper-user","Secret":"helper-pw"}\' ;;',
      '  get:https://index.docker.io/v1/) echo \'{"ServerURL":"x","Username":"<token>","Secret":"hub-refresh"}\' ;;',
      '  get:127.0.0.1:6666) echo "the keychain is locked"; exit 1 ;;',
      '  get:127.0.0.1:7777) echo "helper-secret-not-json"; exit 0 ;;',
      '  get:*) echo "credentials not found in native keychain"; exit 1 ;;',
      '  store:*|erase:*) exit 0 ;;',
      '  *) echo "unknown action"; exit 1 ;;',
      'esac',
      '',
    ].join('\n');
    await writeFile(join(binDir, 'docker-credential-test'), script);
    await chmod(join(binDir, 'docker-credential-test'), 0o755);
    // PATH for the helper only: this test's directory and the shell's.
    env = { PATH: `${binDir}:/usr/bin:/bin` };
  });
  after(async () => {
    await rm(binDir, { recursive: true, force: true });
  });

  const cases: { name: string; config: unknown; host: string; want: Credentials | undefined }[] = [
    {
      name: 'credsStore for every host',
      config: { credsStore: 'test' },
      host: '127.0.0.1:5000',
      want: { username: 'helper-user', password: 'helper-pw' },
    },
    {
      name: 'credHelpers for the host, ahead of its auths entry',
      config: { credHelpers: { '127.0.0.1:5000': 'test' }, auths: { '127.0.0.1:5000': { auth: b64('file:pw') } } },
      host: '127.0.0.1:5000',
      want: { username: 'helper-user', password: 'helper-pw' },
    },
    {
      name: 'a "<token>" user name as an identity token, Docker Hub asked by its v1 URL',
      config: { credHelpers: { 'index.docker.io': 'test' } },
      host: 'docker.io',
      want: { username: '', password: '', identityToken: 'hub-refresh' },
    },
    {
      name: 'the auths entry when the helper holds nothing',
      config: { credsStore: 'test', auths: { '127.0.0.1:5001': { auth: b64('file:pw') } } },
      host: '127.0.0.1:5001',
      want: { username: 'file', password: 'pw' },
    },
    {
      name: 'nothing when neither holds anything',
      config: { credsStore: 'test' },
      host: '127.0.0.1:5002',
      want: undefined,
    },
  ];
  for (const c of cases) {
    it(`uses ${c.name}`, async () => {
      const store = new CredentialStore({ configPath: await configFile(c.config), env });
      assert.deepEqual(await store.get(c.host), c.want);
    });
  }

  it('passes the helper its error message, one line', async () => {
    const store = new CredentialStore({ configPath: await configFile({ credsStore: 'test' }), env });
    await assert.rejects(store.get('127.0.0.1:6666'), {
      code: 'ERR_CREDENTIAL_HELPER',
      message: 'get credentials for 127.0.0.1:6666 with docker-credential-test: exit status 1: the keychain is locked',
    });
  });

  it('does not show output that is not JSON', async () => {
    const store = new CredentialStore({ configPath: await configFile({ credsStore: 'test' }), env });
    await assert.rejects(store.get('127.0.0.1:7777'), (err: unknown) => {
      assert.ok(err instanceof MinidockError);
      assert.match(err.message, /output is not JSON$/);
      assert.ok(!err.message.includes('helper-secret'));
      return true;
    });
  });

  it('names a helper that is not on PATH', async () => {
    const store = new CredentialStore({ configPath: await configFile({ credsStore: 'absent' }), env });
    await assert.rejects(store.get('127.0.0.1:5000'), {
      code: 'ERR_CREDENTIAL_HELPER',
      message: 'get credentials for 127.0.0.1:5000 with docker-credential-absent: docker-credential-absent not found',
    });
  });

  it('stores and erases through the helper, leaving config.json alone', async () => {
    const path = await configFile({ credsStore: 'test' });
    const before = await readFile(path, 'utf8');
    await writeFile(helperLog, '');
    const store = new CredentialStore({ configPath: path, env });
    assert.equal(await store.store('127.0.0.1:5003', { username: 'u', password: 'p' }), 'test');
    assert.equal(await store.erase('127.0.0.1:5003'), true);
    const log = (await readFile(helperLog, 'utf8')).trim().split('\n');
    assert.deepEqual(log, [
      'store {"ServerURL":"127.0.0.1:5003","Username":"u","Secret":"p"}',
      'erase 127.0.0.1:5003',
    ]);
    assert.equal(await readFile(path, 'utf8'), before);
  });
});

describe('CredentialStore.store and erase in config.json', () => {
  it('writes mode 0600, replaces aliases of the host and keeps unknown fields', async () => {
    const path = await configFile({
      auths: {
        'https://index.docker.io/v1/': { auth: b64('old:old') },
        'index.docker.io': { auth: b64('older:older') },
        '127.0.0.1:5000': { auth: b64('keep:me'), email: 'x@example.invalid' },
      },
      proxies: { default: { httpProxy: 'http://127.0.0.1:3128' } },
      detachKeys: 'ctrl-e,e',
    });
    const store = new CredentialStore({ configPath: path, env: {} });
    assert.equal(await store.store('docker.io', { username: 'new', password: 'pw' }), 'file');

    assert.equal((await stat(path)).mode & 0o777, 0o600);
    const written = JSON.parse(await readFile(path, 'utf8'));
    assert.deepEqual(written, {
      auths: {
        '127.0.0.1:5000': { auth: b64('keep:me'), email: 'x@example.invalid' },
        'https://index.docker.io/v1/': { auth: b64('new:pw') },
      },
      proxies: { default: { httpProxy: 'http://127.0.0.1:3128' } },
      detachKeys: 'ctrl-e,e',
    });
    assert.deepEqual(await store.get('docker.io'), { username: 'new', password: 'pw' });

    assert.equal(await store.erase('https://index.docker.io/v1/'), true);
    assert.equal(await store.erase('docker.io'), false);
    const erased = JSON.parse(await readFile(path, 'utf8'));
    assert.deepEqual(Object.keys(erased.auths), ['127.0.0.1:5000']);
    assert.equal(erased.detachKeys, 'ctrl-e,e');
  });

  it('creates the directory and the file when neither exists', async () => {
    const path = join(dir, 'fresh', 'docker', 'config.json');
    const store = new CredentialStore({ configPath: path, env: {} });
    await store.store('127.0.0.1:5000', { username: 'a', password: 'b' });
    assert.deepEqual(JSON.parse(await readFile(path, 'utf8')), { auths: { '127.0.0.1:5000': { auth: b64('a:b') } } });
    assert.equal((await stat(join(dir, 'fresh', 'docker'))).mode & 0o777, 0o700);
  });
});

describe('RegistryClient with a CredentialStore', () => {
  it('answers a Basic challenge with config.json credentials and logs no secret', async () => {
    const password = 'very-secret-pw';
    const want = `Basic ${b64(`alice:${password}`)}`;
    const registry = await startMock((req, res) => {
      if (req.headers.authorization !== want) {
        res.writeHead(401, { 'www-authenticate': 'Basic realm="mock"', 'content-type': 'application/json' });
        res.end(JSON.stringify({ errors: [{ code: 'UNAUTHORIZED', message: 'authentication required' }] }));
        return;
      }
      res.writeHead(404, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ errors: [{ code: 'MANIFEST_UNKNOWN', message: 'manifest unknown' }] }));
    });
    const logger = recordingLogger();
    const store = new CredentialStore({
      configPath: await configFile({ auths: { [registry.host]: { auth: b64(`alice:${password}`) } } }),
      env: {},
      logger,
    });
    const client = new RegistryClient({ logger, credentials: store.lookup(), retry: { tries: 1 } });
    try {
      const err = await client.fetchManifest(parseReference(`${registry.host}/x/y`), 'latest').then(
        () => undefined,
        (e: unknown) => e as MinidockError,
      );
      assert.ok(err instanceof MinidockError);
      assert.equal(err.code, 'ERR_NOT_FOUND');
      assert.equal(registry.requests.at(-1)!.headers.authorization, want, 'the second request carried Basic');
      assert.ok(logger.lines.some((l) => l.startsWith('debug GET ')), 'requests were logged');
      for (const text of [...logger.lines, err.message, String(err.hint), messageChain(err)]) {
        assert.ok(!text.includes(password), `no password in ${JSON.stringify(text)}`);
        assert.ok(!text.includes(b64(`alice:${password}`)), 'no Basic value');
      }
    } finally {
      await client.close();
      await registry.close();
    }
  });

  it('refuses wrong credentials in checkLogin with the registry\'s reason', async () => {
    const registry = await startMock((req, res) => {
      res.writeHead(401, { 'www-authenticate': 'Basic realm="mock"', 'content-type': 'application/json' });
      res.end(JSON.stringify({ errors: [{ code: 'UNAUTHORIZED', message: 'authentication required' }] }));
    });
    const client = new RegistryClient({ credentials: () => ({ username: 'a', password: 'wrong-pw' }) });
    try {
      await assert.rejects(client.checkLogin(registry.host), (err: unknown) => {
        assert.ok(err instanceof MinidockError);
        assert.equal(err.message, `login to ${registry.host}: unauthorized: authentication required`);
        return true;
      });
      assert.equal(registry.requests.length, 2);
      assert.equal(registry.requests[1]!.url, '/v2/');
    } finally {
      await client.close();
      await registry.close();
    }
  });

  it('exchanges an identity token for an access token in an OAuth2 POST', async () => {
    const forms: string[] = [];
    const realm = await startMock((req, res) => {
      let body = '';
      req.on('data', (c) => (body += c));
      req.on('end', () => {
        forms.push(`${req.method} ${body}`);
        res.end(JSON.stringify({ access_token: 'acc', expires_in: 300 }));
      });
    });
    const registry = await startMock((req, res) => {
      if (req.headers.authorization !== 'Bearer acc') {
        res.writeHead(401, { 'www-authenticate': `Bearer realm="${realm.origin}/token",service="svc"` });
        res.end();
        return;
      }
      res.end('{}');
    });
    const client = new RegistryClient({
      credentials: () => ({ username: '', password: '', identityToken: 'refresh-1' }),
    });
    try {
      await client.checkLogin(registry.host);
      assert.equal(forms.length, 1);
      const [method, body] = forms[0]!.split(' ');
      assert.equal(method, 'POST');
      const form = new URLSearchParams(body);
      assert.equal(form.get('grant_type'), 'refresh_token');
      assert.equal(form.get('refresh_token'), 'refresh-1');
      assert.equal(form.get('service'), 'svc');
      assert.equal(realm.requests[0]!.headers.authorization, undefined);
    } finally {
      await client.close();
      await registry.close();
      await realm.close();
    }
  });
});

function messageChain(err: unknown): string {
  const parts: string[] = [];
  for (let e = err as { message?: string; cause?: unknown } | undefined; e; e = e.cause as typeof e) {
    parts.push(String(e.message));
  }
  return parts.join(' <- ');
}
