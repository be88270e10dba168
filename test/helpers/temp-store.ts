/**
 * A store in a temporary directory for a describe block, for tests of the
 * store's own functions.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before } from 'node:test';
import { Store } from '../../src/store/index.js';

/**
 * Registers hooks in the calling describe block that open a fresh store
 * (before) and remove it (after). The returned object is filled in once
 * the before hook has run.
 */
export function tempStoreSuite(prefix: string): { root: string; store: Store } {
  const suite = {} as { root: string; store: Store };
  before(async () => {
    suite.root = await mkdtemp(join(tmpdir(), `minidock-${prefix}-`));
    suite.store = await Store.open(suite.root);
  });
  after(async () => {
    if (suite.root) await rm(suite.root, { recursive: true, force: true });
  });
  return suite;
}
