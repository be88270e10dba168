/**
 * minidock's unpacker alone, for bench/unpack.sh: applies every layer of
 * an OCI image layout, each to its own directory under OUT, the way a pull
 * does once the blobs are here (digest and diffID verified, gzip, the tar
 * applied in overlay format, all layers at once).
 *
 *   node dist/bench/unpack-layout.js LAYOUT:TAG OUT
 */
import { createReadStream } from 'node:fs';
import { mkdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { pipeline } from 'node:stream/promises';
import { DigestingStream, hexOf, type Digest } from '../src/digest.js';
import type { ImageIndex, ImageManifest } from '../src/image/index.js';
import { applyLayer, decompressor, TarTailStream } from '../src/unpack/index.js';

async function readBlob<T>(layout: string, digest: Digest): Promise<T> {
  return JSON.parse(await readFile(join(layout, 'blobs', 'sha256', hexOf(digest)), 'utf8')) as T;
}

async function main(): Promise<void> {
  const [spec, out] = process.argv.slice(2);
  if (spec === undefined || out === undefined) {
    throw new Error('usage: node dist/bench/unpack-layout.js LAYOUT:TAG OUT');
  }
  const colon = spec.lastIndexOf(':');
  const layout = spec.slice(0, colon);
  const tag = spec.slice(colon + 1);

  const index = JSON.parse(await readFile(join(layout, 'index.json'), 'utf8')) as ImageIndex;
  const refName = 'org.opencontainers.image.ref.name';
  const entry = index.manifests.find((d) => d.annotations?.[refName] === tag);
  if (entry === undefined) throw new Error(`no tag ${tag} in ${layout}`);
  const manifest = await readBlob<ImageManifest>(layout, entry.digest);
  const config = await readBlob<{ rootfs: { diff_ids: Digest[] } }>(layout, manifest.config.digest);

  await Promise.all(
    manifest.layers.map(async (layer, i) => {
      const dir = join(out, String(i));
      await mkdir(dir, { recursive: true });
      const compressed = new DigestingStream();
      const uncompressed = new DigestingStream();
      const tail = new TarTailStream();
      const source = createReadStream(join(layout, 'blobs', 'sha256', hexOf(layer.digest)));
      await Promise.all([
        pipeline(source, compressed, decompressor('gzip'), uncompressed, tail),
        applyLayer(tail, dir),
      ]);
      compressed.verify(`layer ${layer.digest}`, layer.digest, layer.size);
      uncompressed.verify(`diffID of layer ${layer.digest}`, config.rootfs.diff_ids[i]!);
    }),
  );
}

main().catch((err: unknown) => {
  process.stderr.write(`unpack-layout: ${err instanceof Error ? err.message : String(err)}\n`);
  process.exitCode = 1;
});
