/**
 * The image vocabulary: media types, descriptors, manifests, indexes,
 * configs and platforms. A leaf: it imports nothing else from minidock but
 * digests and errors.
 *
 * Limitations: schema 1 manifests are refused; artifact manifests are not
 * treated specially.
 */
export * from './media-types.js';
export * from './types.js';
export * from './platform.js';
export * from './manifest.js';
