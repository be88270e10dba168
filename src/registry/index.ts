/**
 * The registry client: Distribution API v2 over undici, with bearer-token
 * and Basic authentication, bounded retries, redirects to blob storage and
 * digest verification of everything read whole.
 *
 * Importing this module loads undici and nothing else heavy.
 *
 * Limitations: pull only (no push, no HEAD-based existence checks); no
 * credential store yet (RegistryClientOptions.credentials is the hook);
 * no proxy support; tokens are cached in memory only; mirrors and
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
export { redactUrl, type RetryOptions } from './transport.js';
