/**
 * Locks between real processes: a holder killed with SIGKILL leaves
 * nothing that blocks, an exclusive holder keeps others out until it
 * releases, and shared holders hold together.
 */
import assert from 'node:assert/strict';
import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { describe, test } from 'node:test';
import { withLock, type Store } from '../../src/store/index.js';
import { tempStoreSuite } from '../helpers/temp-store.js';

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
  const t = tempStoreSuite('locks');

  test('a lock whose holder was killed with SIGKILL is free for the next taker', async () => {
    const child = await holder(t.root, 'metadata', false);
    child.kill('SIGKILL');
    await exited(child);
    const waits: string[] = [];
    t.store.onLockWait = (name) => waits.push(name);
    try {
      assert.equal(await withLock(t.store, 'metadata', async () => 'taken'), 'taken');
    } finally {
      t.store.onLockWait = undefined;
    }
    assert.deepEqual(waits, [], 'taken at the first attempt, without waiting');
  });

  test('an exclusive holder keeps a second taker out until it releases', async () => {
    const child = await holder(t.root, 'layer-x', false);
    await assertWaitsFor(t.store, 'layer-x', child);
  });

  test('shared holders hold together; an exclusive taker waits for all of them', async () => {
    const child = await holder(t.root, 'content', true);
    // A second shared holder gets in while the first holds.
    assert.equal(await withLock(t.store, 'content', async () => 'with it', { shared: true }), 'with it');
    await assertWaitsFor(t.store, 'content', child);
  });

  test('discard removes the lock file with its subject', async () => {
    await withLock(t.store, 'layer-gone', async () => {}, { discard: true });
    assert.ok(!(await readdir(join(t.root, 'locks'))).includes('layer-gone'));
    await withLock(t.store, 'layer-kept', async () => {});
    assert.ok((await readdir(join(t.root, 'locks'))).includes('layer-kept'));
  });
});
