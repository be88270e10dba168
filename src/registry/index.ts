/**
 * The registry client: Distribution API v2 over undici, with bearer-token
 * and Basic authentication, bounded retries, redirects to blob storage and
 * digest verification of everything read whole.
 *
 * Importing this module loads undici and nothing else heavy.
 *
 * Credentials come from a Docker config.json and its credential helpers
 * (CredentialStore), through RegistryClientOptions.credentials.
 *
 * TLS trust and client certificates per registry come from a certs.d
 * directory in Docker's layout (certs.ts); docker.io can go through
 * mirrors; foreign layers come from their own `urls`. docs/registry.md
 * describes the protocol as implemented.
 *
 * Limitations: pull only (no push, no HEAD-based existence checks); no
 * proxy support; tokens are cached in memory only.
 */
export {
  RegistryClient,
  smallBodyLimit,
  type FetchedManifest,
  type OpenedBlob,
  type RegistryClientOptions,
  type RequestOptions,
  type ResolvedImage,
} from './client.js';
export { parseChallenges, type Challenge } from './challenge.js';
export { CertsDir, defaultCertsDir, type HostTLS } from './certs.js';
export type { Credentials, CredentialsLookup } from './auth.js';
export {
  CredentialStore,
  dockerHubServer,
  normalizeServer,
  serverKey,
  type CredentialStoreOptions,
} from './credentials.js';
export {
  connectionError,
  formatDelay,
  isTemporaryNetworkError,
  redactUrl,
  type RetryOptions,
} from './transport.js';
