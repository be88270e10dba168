/**
 * TLS trust and client certificates per registry, in Docker's certs.d
 * layout: a directory per host (and port, when not 443) under the certs
 * root, holding
 *
 *   *.crt              CA certificates trusted for that host, besides the
 *                      system's
 *   <name>.cert        a client certificate, presented to that host, with
 *   <name>.key         its private key (a .cert without its .key, or the
 *                      reverse, is an error, as in Docker)
 *
 * The system's trust is Node's bundled roots plus the distribution's CA
 * bundle file (Debian: /etc/ssl/certs/ca-certificates.crt) when readable.
 */
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { rootCertificates } from 'node:tls';
import { MinidockError } from '../errors.js';

/** Where minidock looks for per-registry certificates by default. */
export const defaultCertsDir = '/etc/minidock/certs.d';

/** The system CA bundle of Debian and its derivatives. */
export const defaultSystemCAFile = '/etc/ssl/certs/ca-certificates.crt';

/** TLS options for one host, as node:tls takes them. */
export interface HostTLS {
  ca: string[];
  cert?: string;
  key?: string;
}

/**
 * Reads certs.d entries and remembers what it read: one lookup per host
 * for the client's lifetime.
 */
export class CertsDir {
  readonly root: string;
  readonly #systemCAFile: string;
  readonly #cache = new Map<string, HostTLS | undefined>();
  #systemCAs?: string[];

  constructor(root = defaultCertsDir, systemCAFile = defaultSystemCAFile) {
    this.root = root;
    this.#systemCAFile = systemCAFile;
  }

  /** True when root holds a directory for host ("host" or "host:port"). */
  has(host: string): boolean {
    return this.#dirOf(host) !== undefined;
  }

  /**
   * Returns the TLS options for host: the system's CAs plus the host's own,
   * and its client certificate. undefined when certs.d has nothing for host
   * (Node's defaults then apply). Throws MinidockError (ERR_CERTS) for an
   * unreadable file or a certificate without its key.
   */
  forHost(host: string): HostTLS | undefined {
    if (this.#cache.has(host)) return this.#cache.get(host);
    const dir = this.#dirOf(host);
    let tls: HostTLS | undefined;
    if (dir !== undefined) {
      const names = readdirSync(dir).sort();
      const read = (name: string): string => {
        try {
          return readFileSync(join(dir, name), 'utf8');
        } catch (err) {
          throw new MinidockError('ERR_CERTS', `read ${JSON.stringify(join(dir, name))}: ${(err as Error).message}`);
        }
      };
      tls = { ca: [...this.#system(), ...names.filter((n) => n.endsWith('.crt')).map(read)] };
      for (const name of names.filter((n) => n.endsWith('.cert'))) {
        const keyName = `${name.slice(0, -'.cert'.length)}.key`;
        if (!names.includes(keyName)) {
          throw new MinidockError('ERR_CERTS', `client certificate ${JSON.stringify(join(dir, name))} has no key ${keyName}`);
        }
        if (tls.cert !== undefined) {
          throw new MinidockError('ERR_CERTS', `${JSON.stringify(dir)} holds more than one client certificate`);
        }
        tls.cert = read(name);
        tls.key = read(keyName);
      }
      for (const name of names.filter((n) => n.endsWith('.key'))) {
        const certName = `${name.slice(0, -'.key'.length)}.cert`;
        if (!names.includes(certName)) {
          throw new MinidockError('ERR_CERTS', `key ${JSON.stringify(join(dir, name))} has no client certificate ${certName}`);
        }
      }
    }
    this.#cache.set(host, tls);
    return tls;
  }

  #dirOf(host: string): string | undefined {
    // Docker's names: "host:port", or "host" for 443. A path separator or
    // dot-dot in host cannot come from a parsed reference, but is refused
    // here too rather than trusted.
    if (host === '' || host.includes('/') || host.includes('..')) return undefined;
    const dir = join(this.root, host.endsWith(':443') ? host.slice(0, -4) : host);
    return existsSync(dir) ? dir : undefined;
  }

  #system(): string[] {
    if (this.#systemCAs === undefined) {
      this.#systemCAs = [...rootCertificates];
      try {
        this.#systemCAs.push(readFileSync(this.#systemCAFile, 'utf8'));
      } catch {
        // No system bundle: Node's roots alone.
      }
    }
    return this.#systemCAs;
  }
}
