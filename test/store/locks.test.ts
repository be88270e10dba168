/**
 * Locks between real processes: a holder killed with SIGKILL leaves
 * nothing that blocks, an exclusive holder keeps others out until it
 * releases, and shared holders hold together.
 */
import assert from 'node:assert/strict';
import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { mkdtemp, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { after, before, describe, test } from 'node:test';
import { Store, withLock } from '../../src/store/index.js';

const storeModule = new URL('../../src/store/index.js', import.meta.url).href;

/**
 * Starts a process that takes lock `name` (shared or not) in the store at
 * root, prints "held", and releases it (and exits) when its stdin closes.
 */
async function holder(root: string, name: string, shared: boolean): Promise<ChildProcessWithoutNullStreams> {
  const script = `
    const { Store, withLock } = await import(${JSON.stringify(storeModule)});
    const store = await Store.open(${JSON.stringify(root)});
    await withLock(store, ${JSON.stringify(name)}, async () => {
      process.stdout.write('held\\n');
      await new Promise((resolve) => process.stdin.on('end', resolve).resume());
    }, { shared: ${shared} });
  `;
  const child = spawn(process.execPath, ['--input-type=module', '-e', script]);
  let err = '';
  child.stderr.on('data', (c: Buffer) => (err += c.toString()));
  await new Promise<void>((resolve, reject) => {
    child.stdout.once('data', () => resolve());
    child.once('exit', (code) => reject(new Error(`holder exited ${code}: ${err}`)));
  });
  return child;
}

const exited = (child: ChildProcessWithoutNullStreams) =>
  child.exitCode !== null || child.signalCode !== null ? Promise.resolve() : new Promise((resolve) => child.once('exit', resolve));

/**
 * Asserts that taking lock `name` waits (and says so through onLockWait)
 * until the holder child released it (which it does when its stdin closes).
 */
async function assertWaitsFor(
  store: Store,
  name: string,
  child: ChildProcessWithoutNullStreams,
): Promise<void> {
  const events: string[] = [];
  store.onLockWait = (name) => events.push(`waiting for ${name}`);
  const taking = withLock(store, name, async () => {
    events.push('entered');
  });
  // Give the waiter time to try a few times (it polls every few ms).
  await sleep(300);
  events.push('released');
  child.stdin.end();
  await taking;
  store.onLockWait = undefined;
  await exited(child);
  assert.deepEqual(events, [`waiting for ${name}`, 'released', 'entered']);
}

describe('store locks between processes', () => {
  let root: string;
  let store: Store;

  before(async () => {
    root = await mkdtemp(join(tmpdir(), 'minidock-locks-'));
    store = await Store.open(root);
  });

  after(async () => {
    if (root) await rm(root, { recursive: true, force: true });
  });

  test('a lock whose holder was killed with SIGKILL is free for the next taker', async () => {
    const child = await holder(root, 'metadata', false);
    child.kill('SIGKILL');
    await exited(child);
    const waits: string[] = [];
    store.onLockWait = (name) => waits.push(name);
    try {
      assert.equal(await withLock(store, 'metadata', async () => 'taken'), 'taken');
    } finally {
      store.onLockWait = undefined;
    }
    assert.deepEqual(waits, [], 'taken at the first attempt, without waiting');
  });

  test('an exclusive holder keeps a second taker out until it releases', async () => {
    const child = await holder(root, 'layer-x', false);
    await assertWaitsFor(store, 'layer-x', child);
  });

  test('shared holders hold together; an exclusive taker waits for all of them', async () => {
    const child = await holder(root, 'content', true);
    // A second shared holder gets in while the first holds.
    assert.equal(await withLock(store, 'content', async () => 'with it', { shared: true }), 'with it');
    await assertWaitsFor(store, 'content', child);
  });

  test('discard removes the lock file with its subject', async () => {
    await withLock(store, 'layer-gone', async () => {}, { discard: true });
    assert.ok(!(await readdir(join(root, 'locks'))).includes('layer-gone'));
    await withLock(store, 'layer-kept', async () => {});
    assert.ok((await readdir(join(root, 'locks'))).includes('layer-kept'));
  });
});
