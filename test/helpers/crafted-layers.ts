/**
 * Crafted layers for the inspect tests: tars built with makeTar, unpacked
 * by minidock's own applyLayer into overlay-format directories, as pull
 * leaves them in the store.
 */
import { mkdir, mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { applyLayer } from '../../src/unpack/index.js';
import { makeTar, type TarEntry } from './make-tar.js';

const t = new Date(Date.UTC(2024, 0, 1));

/** A directory entry. */
export const dir = (name: string, mode = 0o755): TarEntry => ({ name: `${name}/`, type: 'directory', mode, mtime: t });
/** A regular file of `size` bytes (the letter c repeated). */
export const file = (name: string, size: number, c = 'x'): TarEntry => ({ name, content: c.repeat(size), mtime: t });

/**
 * The image every inspect test works on, three layers:
 *
 * 1. etc/f (100 B), keep (1000 B), old/x (10 B), old/y (20 B), opq/a (30 B),
 *    hl1 (40 B) and hl2 (a hard link to hl1), link -> keep
 * 2. etc/f again (200 B), and a whiteout of old/
 * 3. etc/f a third time (50 B), opq/ made opaque, with opq/b (5 B)
 *
 * Hand computation of its efficiency, as dive counts it (leaves only; a
 * whiteout or opaque directory over a directory weighs what it hides):
 *
 *   path   nodes          sum   min
 *   etc/f  100, 200, 50   350    50
 *   keep   1000          1000  1000
 *   old/x  10              10    10
 *   old/y  20              20    20
 *   old    30 (whiteout)   30    30
 *   opq/a  30              30    30
 *   opq    30 (opaque)     30    30
 *   opq/b  5                5     5
 *   hl1    40              40    40
 *   hl2    0 (link)         0     0
 *   link   0                0     0
 *                        1515  1215   score = 1215 / 1515
 *
 * dive's potential waste: etc/f alone is seen more than once, 350 B.
 * Bytes the final image does not show: layer 1 etc/f 100 + old/x 10 +
 * old/y 20 + opq/a 30 = 160, layer 2 etc/f 200, layer 3 none: 360 B.
 */
export const craftedLayers: TarEntry[][] = [
  [
    dir('etc'),
    file('etc/f', 100, 'a'),
    file('keep', 1000, 'k'),
    dir('old'),
    file('old/x', 10),
    file('old/y', 20),
    dir('opq'),
    file('opq/a', 30),
    file('hl1', 40, 'h'),
    { name: 'hl2', type: 'link', linkname: 'hl1', mtime: t },
    { name: 'link', type: 'symlink', linkname: 'keep', mtime: t, mode: 0o777 },
  ],
  [dir('etc'), file('etc/f', 200, 'b'), { name: '.wh.old', mtime: t }],
  [dir('etc'), file('etc/f', 50, 'c'), dir('opq'), { name: 'opq/.wh..wh..opq', mtime: t }, file('opq/b', 5)],
];

/** The tars of layers, uncompressed. */
export function craftedTars(layers: TarEntry[][] = craftedLayers): Promise<Buffer[]> {
  return Promise.all(layers.map((l) => makeTar(l)));
}

/**
 * Unpacks each tar into its own diff directory under a fresh temp
 * directory and returns the directories, bottom first. Needs root.
 */
export async function unpackLayers(tars: Buffer[]): Promise<string[]> {
  const root = await mkdtemp(join(tmpdir(), 'minidock-inspect-'));
  const dirs: string[] = [];
  for (const [i, tar] of tars.entries()) {
    const d = join(root, String(i + 1));
    await mkdir(d);
    await applyLayer(Readable.from([tar]), d);
    dirs.push(d);
  }
  return dirs;
}
