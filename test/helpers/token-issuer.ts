/**
 * A token issuer for tests: the token service of Docker's token protocol,
 * on 127.0.0.1 at a free port, signing real JWTs (RS256, with the signing
 * certificate in the x5c header) that docker-registry configured with
 * `auth: token:` and this issuer's certificate as its rootcertbundle
 * verifies and honours.
 *
 * The key and self-signed certificate are made with openssl (Debian's
 * openssl package). What is granted is decided per request by `grant`,
 * so tests can hand out short-lived, expired or too-narrow tokens.
 */
import { execFile } from 'node:child_process';
import { createSign, randomBytes, X509Certificate } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { createServer, type IncomingMessage } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import { join } from 'node:path';
import { promisify } from 'node:util';

const execFileAsync = promisify(execFile);

/** One entry of a token's "access" claim. */
export interface Access {
  type: string;
  name: string;
  actions: string[];
}

/** What the issuer decides for one token request. */
export interface Grant {
  /** Access granted; default: every scope asked for, as asked. */
  access?: Access[];
  /** Seconds from now to the JWT's exp claim; default 300. */
  expSeconds?: number;
  /** The expires_in of the answer; default expSeconds. undefined in the answer when null. */
  expiresIn?: number | null;
  /** Answer with this status (and no token) instead. */
  refuse?: number;
}

export interface TokenRequest {
  service: string | null;
  scopes: string[];
  /** The user named by Basic credentials, when they were right. */
  user?: string;
  /** True when an Authorization header came, right or wrong. */
  authorized: boolean;
}

export interface TokenIssuerOptions {
  /** The registry's service name (the aud claim); default "minidock-test-registry". */
  service?: string;
  /** Basic credentials the issuer accepts; anonymous requests are refused (401) when set. */
  credentials?: { username: string; password: string };
  /** Decides each request; see Grant. */
  grant?: (req: TokenRequest) => Grant;
}

export interface TokenIssuer {
  /** "http://127.0.0.1:PORT/token", the realm the registry names. */
  realm: string;
  service: string;
  issuer: string;
  /** The PEM certificate file the registry trusts. */
  certPath: string;
  /** Every token request, in order. */
  requests: TokenRequest[];
  /** Replaces the grant policy. */
  setGrant(grant: (req: TokenRequest) => Grant): void;
  close(): Promise<void>;
}

function parseScope(scope: string): Access | undefined {
  // "repository:name:actions"; the name may itself hold a port's colon.
  const first = scope.indexOf(':');
  const last = scope.lastIndexOf(':');
  if (first < 0 || last <= first) return undefined;
  return {
    type: scope.slice(0, first),
    name: scope.slice(first + 1, last),
    actions: scope.slice(last + 1).split(',').filter(Boolean),
  };
}

function userOf(req: IncomingMessage, creds: TokenIssuerOptions['credentials']): string | undefined {
  const m = /^Basic (.+)$/.exec(req.headers.authorization ?? '');
  if (!m || creds === undefined) return undefined;
  const text = Buffer.from(m[1]!, 'base64').toString('utf8');
  return text === `${creds.username}:${creds.password}` ? creds.username : undefined;
}

/**
 * Starts an issuer whose key and certificate live in dir (created by the
 * caller, removed by the caller).
 */
export async function startTokenIssuer(dir: string, options: TokenIssuerOptions = {}): Promise<TokenIssuer> {
  const keyPath = join(dir, 'issuer-key.pem');
  const certPath = join(dir, 'issuer-cert.pem');
  await execFileAsync('openssl', [
    'req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-sha256', '-days', '2',
    '-subj', '/CN=minidock test token issuer', '-keyout', keyPath, '-out', certPath,
  ]);
  const key = await readFile(keyPath);
  const cert = new X509Certificate(await readFile(certPath));
  const service = options.service ?? 'minidock-test-registry';
  const issuer = 'minidock-test-issuer';
  let grant: (req: TokenRequest) => Grant = options.grant ?? (() => ({}));
  const requests: TokenRequest[] = [];
  const b64url = (b: string | Buffer) => Buffer.from(b).toString('base64url');

  const sockets = new Set<Socket>();
  const server = createServer((req, res) => {
    const url = new URL(req.url ?? '/', 'http://issuer');
    const user = userOf(req, options.credentials);
    const tr: TokenRequest = {
      service: url.searchParams.get('service'),
      scopes: url.searchParams.getAll('scope'),
      authorized: req.headers.authorization !== undefined,
      ...(user === undefined ? {} : { user }),
    };
    requests.push(tr);
    if (url.pathname !== '/token') {
      res.writeHead(404).end();
      return;
    }
    const refuse = (status: number, message: string) => {
      res.writeHead(status, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ errors: [{ code: 'UNAUTHORIZED', message }] }));
    };
    if (options.credentials !== undefined && user === undefined) {
      refuse(401, tr.authorized ? 'wrong user name or password' : 'credentials required');
      return;
    }
    const g = grant(tr);
    if (g.refuse !== undefined) {
      refuse(g.refuse, 'refused by the test');
      return;
    }

    const now = Math.floor(Date.now() / 1000);
    const expSeconds = g.expSeconds ?? 300;
    const access = g.access ?? tr.scopes.map(parseScope).filter((a): a is Access => a !== undefined);
    const header = { typ: 'JWT', alg: 'RS256', x5c: [cert.raw.toString('base64')] };
    const claims = {
      iss: issuer,
      sub: user ?? '',
      aud: tr.service ?? service,
      exp: now + expSeconds,
      nbf: now - 10,
      iat: now,
      jti: randomBytes(12).toString('hex'),
      access,
    };
    const signingInput = `${b64url(JSON.stringify(header))}.${b64url(JSON.stringify(claims))}`;
    const signature = createSign('RSA-SHA256').update(signingInput).sign(key);
    const body: Record<string, unknown> = { token: `${signingInput}.${b64url(signature)}` };
    const expiresIn = g.expiresIn === undefined ? expSeconds : g.expiresIn;
    if (expiresIn !== null) body.expires_in = expiresIn;
    res.writeHead(200, { 'content-type': 'application/json' });
    res.end(JSON.stringify(body));
  });
  server.on('connection', (s) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve());
  });
  const port = (server.address() as AddressInfo).port;
  return {
    realm: `http://127.0.0.1:${port}/token`,
    service,
    issuer,
    certPath,
    requests,
    setGrant(g) {
      grant = g;
    },
    close: () =>
      new Promise<void>((resolve) => {
        for (const s of sockets) s.destroy();
        server.close(() => resolve());
      }),
  };
}
