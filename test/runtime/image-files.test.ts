import assert from 'node:assert/strict';
import { mkdir, mkdtemp, rm, symlink, truncate, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { MinidockError } from '../../src/errors.js';
import { readMergedFile } from '../../src/runtime/image-files.js';
import { mknod, S_IFCHR } from '../../src/sys/index.js';

const skip = process.getuid?.() !== 0 ? 'needs root (whiteouts are device nodes)' : false;

describe('readMergedFile', { skip }, () => {
  let dir: string;
  let hostSecret: string;
  let upper: string;
  let lower: string;
  const opaque = new Set<string>();
  const isOpaque = async (d: string) => opaque.has(d);

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'minidock-merged-'));
    upper = join(dir, 'upper');
    lower = join(dir, 'lower');
    hostSecret = join(dir, 'host');
    await mkdir(join(hostSecret, 'etc'), { recursive: true });
    await writeFile(join(hostSecret, 'etc', 'passwd'), 'host-secret\n');
    for (const d of ['etc', 'gone', 'opq', 'linkdir']) {
      await mkdir(join(lower, d), { recursive: true });
    }
    await writeFile(join(lower, 'etc', 'passwd'), 'lower passwd\n');
    await writeFile(join(lower, 'etc', 'group'), 'lower group\n');
    await writeFile(join(lower, 'gone', 'f'), 'deleted later\n');
    await writeFile(join(lower, 'opq', 'f'), 'hidden by opaque\n');
    await writeFile(join(lower, 'linkdir', 'f'), 'through a link\n');
    await mkdir(join(upper, 'etc'), { recursive: true });
    await mkdir(join(upper, 'opq'), { recursive: true });
    await writeFile(join(upper, 'etc', 'group'), 'upper group\n');
    await mknod(join(upper, 'gone'), S_IFCHR, 0n);
    opaque.add(join(upper, 'opq'));
    // Links the image ships: absolute and relative, escaping and not.
    await symlink('/linkdir/f', join(upper, 'abs-link'));
    await symlink('../../../../../../linkdir/f', join(upper, 'dotdot-link'));
    await symlink(join(hostSecret, 'etc'), join(upper, 'host-etc'));
    await symlink('loop-b', join(upper, 'loop-a'));
    await symlink('loop-a', join(upper, 'loop-b'));
  });

  after(async () => {
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  const read = (path: string) => readMergedFile([upper, lower], path, isOpaque, 1 << 20);

  test('takes the topmost layer that has the file', async () => {
    assert.equal(await read('/etc/group'), 'upper group\n');
    assert.equal(await read('/etc/passwd'), 'lower passwd\n');
  });
  test('honours whiteouts and opaque directories', async () => {
    assert.equal(await read('/gone/f'), undefined);
    assert.equal(await read('/opq/f'), undefined);
  });
  test('resolves links inside the image, never on the host', async () => {
    assert.equal(await read('/abs-link'), 'through a link\n');
    assert.equal(await read('/dotdot-link'), 'through a link\n');
    // host-etc points at a host directory by absolute path: inside the
    // image that path does not exist.
    assert.equal(await read('/host-etc/passwd'), undefined);
    assert.equal(await read('/loop-a'), undefined);
    assert.equal(await read('/etc'), undefined, 'a directory is not a file');
  });
  test('refuses a file past the size limit with one line, without reading it', async () => {
    // Sparse: 600 MB by its size, nothing on disk. Read whole, its string
    // would pass V8's limit.
    const big = join(upper, 'big-passwd');
    await writeFile(big, '');
    await truncate(big, 600 * 1024 * 1024);
    await assert.rejects(read('/big-passwd'), (err: Error) => {
      assert.ok(err instanceof MinidockError);
      assert.equal(err.message, 'read /big-passwd of the image: it is 629145600 bytes, more than the 1048576 minidock reads');
      return true;
    });
  });
});
