/**
 * Pull: registry client, store and unpack working together.
 *
 * Limitations: an interrupted download restarts from the beginning of the
 * blob; zstd layers are refused.
 */
export * from './pull.js';
export * from './progress.js';
