/**
 * Checks of a store directory that use none of minidock's store code: the
 * invariants every test of crashes, concurrency and garbage collection
 * asserts afterwards.
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { lstat, readdir, readFile } from 'node:fs/promises';
import { join, normalize } from 'node:path';
import { listLayer } from './layout.js';

/** Asserts that every blob hashes to its name; returns how many there are. */
export async function assertBlobsVerify(root: string): Promise<number> {
  const dir = join(root, 'blobs', 'sha256');
  const names = await readdir(dir);
  for (const hex of names) {
    const actual = createHash('sha256').update(await readFile(join(dir, hex))).digest('hex');
    assert.equal(actual, hex, `blob ${hex} matches its digest`);
  }
  return names.length;
}

/**
 * Asserts that every layer directory marked complete (it has layer.json) is
 * complete: its diff/ holds every entry of the layer's tar (read from a
 * stored blob of it, whose uncompressed bytes must hash to the directory's
 * name) with the entry's type and, for files, size; a whiteout `.wh.x` is
 * x as a 0/0 character device. Returns how many layers were compared.
 */
export async function assertLayersComplete(root: string): Promise<number> {
  const dir = join(root, 'layers');
  let compared = 0;
  for (const hex of await readdir(dir)) {
    if (!/^[0-9a-f]{64}$/.test(hex)) continue;
    const record = JSON.parse(await readFile(join(dir, hex, 'layer.json'), 'utf8')) as { blobs?: string[] };
    const diff = join(dir, hex, 'diff');
    assert.ok((await lstat(diff)).isDirectory(), `layer ${hex} has diff/`);
    const blob = await firstReadable(root, record.blobs ?? []);
    if (blob === undefined) continue;
    const plain = blob[0] === 0x1f && blob[1] === 0x8b ? (await import('node:zlib')).gunzipSync(blob) : blob;
    assert.equal(createHash('sha256').update(plain).digest('hex'), hex, `a blob of layer ${hex} holds that layer`);
    for (const { header } of await listLayer(plain)) {
      const name = normalize(header.name).replace(/\/$/, '');
      const base = name.split('/').at(-1)!;
      if (base === '.wh..wh..opq' || name === '.') continue;
      if (base.startsWith('.wh.')) {
        const st = await lstat(join(diff, name.slice(0, -base.length), base.slice(4)));
        assert.ok(st.isCharacterDevice() && st.rdev === 0, `whiteout ${name} of layer ${hex}`);
        continue;
      }
      const st = await lstat(join(diff, name)).catch(() => undefined);
      assert.ok(st !== undefined, `layer ${hex} holds ${name}`);
      if (header.type === 'file') assert.equal(st.size, header.size, `size of ${name} in layer ${hex}`);
      if (header.type === 'directory') assert.ok(st.isDirectory(), `${name} is a directory in layer ${hex}`);
      if (header.type === 'symlink') assert.ok(st.isSymbolicLink(), `${name} is a symlink in layer ${hex}`);
    }
    compared++;
  }
  return compared;
}

async function firstReadable(root: string, digests: string[]): Promise<Buffer | undefined> {
  for (const d of digests) {
    const bytes = await readFile(join(root, 'blobs', 'sha256', d.replace(/^sha256:/, ''))).catch(() => undefined);
    if (bytes !== undefined) return bytes;
  }
  return undefined;
}
