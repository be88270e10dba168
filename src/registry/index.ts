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
 * Limitations: pull only (no push, no HEAD-based existence checks); no
 * proxy support; tokens are cached in memory only; mirrors and
 * foreign-layer `urls` are not consulted.
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
