/**
 * Pull: registry client, store and unpack working together.
 *
 * An interrupted download is resumed with a Range request, within the pull
 * after a dropped connection and by the next pull after a killed one.
 *
 * Limitations: an unpack interrupted with its download is redone from the
 * layer's first byte (read back from the partial file, not the network).
 */
export * from './pull.js';
export * from './progress.js';
