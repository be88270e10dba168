/**
 * Offline exchange of images: `save` writes images from the store as a
 * Docker archive, an OCI archive or an OCI layout directory; `load` reads
 * any of them (and gzip-compressed tars) back, verifying every blob and
 * layer as a pull does.
 *
 * Limitations: an image pulled from a multi-platform index is saved with
 * its own platform's manifest only; Docker's legacy per-layer directories
 * (`<id>/json`) are ignored on load, as Docker itself does when
 * manifest.json is present; foreign (non-distributable) layers whose files
 * are absent are refused.
 */
export * from './save.js';
export * from './load.js';
