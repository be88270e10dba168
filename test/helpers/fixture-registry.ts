/**
 * A real registry holding the three fixture images, for tests that pull
 * them through the CLI.
 */
import { rm } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before } from 'node:test';
import { makeTestRoot } from './cli.js';
import { fixtureLayouts } from './fixtures.js';
import { startRegistry, type TestRegistry } from './registry.js';

export interface FixtureRegistry {
  registry: TestRegistry;
  /** Full references "127.0.0.1:PORT/library/<name>:latest". */
  busybox: string;
  layered: string;
  multiarch: string;
}

/** Starts a registry and pushes busybox, layered and multiarch (all platforms). stop() its registry. */
export async function startFixtureRegistry(): Promise<FixtureRegistry> {
  const layouts = await fixtureLayouts();
  const registry = await startRegistry();
  try {
    await registry.push(join(layouts, 'busybox'), 'library/busybox', 'latest');
    await registry.push(join(layouts, 'layered'), 'library/layered', 'latest');
    await registry.push(join(layouts, 'multiarch'), 'library/multiarch', 'latest', { all: true });
  } catch (err) {
    await registry.stop();
    throw err;
  }
  const ref = (name: string) => `${registry.host}/library/${name}:latest`;
  return { registry, busybox: ref('busybox'), layered: ref('layered'), multiarch: ref('multiarch') };
}

/** A describe block's registry of fixtures and store root, set up by fixtureSuite's hooks. */
export interface FixtureSuite extends FixtureRegistry {
  /** The store root (MINIDOCK_ROOT) of the suite's CLI runs. */
  root: string;
}

/**
 * Registers before/after hooks in the calling describe block: a fixture
 * registry and an empty store root, both removed afterwards. The returned
 * object is filled in once the before hook has run.
 */
export function fixtureSuite(): FixtureSuite {
  const suite = {} as FixtureSuite;
  before(async () => {
    Object.assign(suite, await startFixtureRegistry());
    suite.root = makeTestRoot();
  });
  after(async () => {
    await suite.registry?.stop();
    if (suite.root) await rm(suite.root, { recursive: true, force: true });
  });
  return suite;
}
