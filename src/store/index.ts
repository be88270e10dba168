/**
 * The store: content-addressed blobs, image records and tags, unpacked
 * layers, containers, and the locks between minidock processes.
 *
 * Limitations: layer files are not fsynced one by one (a layer directory is
 * published by rename once complete); partial downloads stay in tmp/ until
 * a pull finishes them or `system prune` removes them.
 */
export * from './store.js';
export * from './locks.js';
export * from './blobs.js';
export * from './images.js';
export * from './layers.js';
export * from './containers.js';
export * from './gc.js';
