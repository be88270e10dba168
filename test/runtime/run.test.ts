/**
 * runContainer's refusals that come before the store is touched.
 */
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import type { Digest, DiffID } from '../../src/digest.js';
import { NotImplementedError } from '../../src/errors.js';
import { runContainer } from '../../src/runtime/run.js';
import { Store, type ImageRecord } from '../../src/store/index.js';

function imageOf(diffIDs: DiffID[]): ImageRecord {
  return { id: `sha256:${'c'.repeat(64)}` as Digest, diffIDs } as unknown as ImageRecord;
}

function diffID(i: number): DiffID {
  return `sha256:${i.toString(16).padStart(12, '0')}${'a'.repeat(52)}` as DiffID;
}

test('an image whose mount options would not fit one page even by short links is refused, naming the byte count', async () => {
  // 300 layers cost 300 * 15 bytes of lowerdir alone.
  const root = join(tmpdir(), `minidock-no-store-${process.pid}`);
  const store = new Store(root);
  const image = imageOf(Array.from({ length: 300 }, (_, i) => diffID(i)));
  await assert.rejects(
    runContainer(store, {
      imageName: 'many',
      image,
      config: { architecture: 'amd64', os: 'linux', rootfs: { type: 'layers', diff_ids: image.diffIDs }, config: { Cmd: ['true'] } },
      args: [],
      env: [],
      envFiles: [],
      tty: false,
      interactive: false,
      limits: {},
      autoRemove: true,
      hostEnv: {},
    } as unknown as Parameters<typeof runContainer>[1]),
    (err: Error) => {
      assert.ok(err instanceof NotImplementedError);
      assert.match(err.message, /^not implemented: an image of 300 layers: its overlay mount options take \d+ bytes, past the kernel's one-page limit of 4095$/);
      const bytes = Number(/take (\d+) bytes/.exec(err.message)![1]);
      assert.ok(bytes > 300 * 15, `${bytes} bytes`);
      return true;
    },
  );
  assert.equal(existsSync(root), false, 'the store was not touched');
});
