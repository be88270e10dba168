/**
 * Peak memory of the inspect code on a generated image of many files.
 *
 *   node dist/bench/inspect-memory.js [--entries N] [--dir DIR] [--no-export] [--keep]
 *
 * Writes two layer directories in overlay format under a temp directory
 * (in DIR, default the system's temp directory; a tmpfs such as /dev/shm
 * keeps file creation off the disk):
 * layer 1 holds N entries (directories of 999 empty files each, every
 * tenth file 100 bytes long), layer 2 overwrites every hundredth file,
 * whites out one directory and makes another opaque. Then it walks them the
 * way `layers`, `inspect --efficiency`, `ls` and `export` do, and prints
 * one JSON line: the counts each pass saw, its seconds, and the process's
 * peak resident memory (getrusage maxrss, kB). Needs root (whiteouts are
 * character devices; opaque directories carry a trusted.* xattr).
 */
import fs from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { exportTar, layerChanges, measureEfficiency, mergedEntries } from '../src/inspect/index.js';
import { lsetxattr, mknod, S_IFCHR } from '../src/sys/index.js';

const perDir = 999;

/** Writes layer 1 with `entries` entries; returns how many directories it made. */
function writeBase(dir: string, entries: number): number {
  const dirs = Math.ceil(entries / (perDir + 1));
  let left = entries;
  for (let d = 0; d < dirs && left > 0; d++) {
    const sub = join(dir, `d${d}`);
    fs.mkdirSync(sub);
    left--;
    for (let f = 0; f < perDir && left > 0; f++, left--) {
      fs.writeFileSync(join(sub, `f${f}`), f % 10 === 0 ? 'x'.repeat(100) : '');
    }
  }
  return dirs;
}

/** Layer 2: every hundredth file of d1.. overwritten, d0 whited out, d1 opaque with one file. */
function writeTop(dir: string, dirs: number): void {
  mknod(join(dir, 'd0'), S_IFCHR | 0o000, 0n);
  fs.mkdirSync(join(dir, 'd1'));
  lsetxattr(join(dir, 'd1'), 'trusted.overlay.opaque', Buffer.from('y'));
  fs.writeFileSync(join(dir, 'd1', 'only'), 'only');
  for (let d = 2; d < dirs; d++) {
    fs.mkdirSync(join(dir, `d${d}`));
    for (let f = 0; f < perDir; f += 100) fs.writeFileSync(join(dir, `d${d}`, `f${f}`), 'y'.repeat(200));
  }
}

function timed<T>(fn: () => T): [T, number] {
  const start = process.hrtime.bigint();
  const value = fn();
  return [value, Number(process.hrtime.bigint() - start) / 1e9];
}

async function main(): Promise<void> {
  const args = process.argv.slice(2);
  const at = args.indexOf('--entries');
  const entries = at >= 0 ? Number(args[at + 1]) : 200_000;
  const keep = args.includes('--keep');
  const exportToo = !args.includes('--no-export');
  const dirAt = args.indexOf('--dir');
  const root = fs.mkdtempSync(join(dirAt >= 0 ? args[dirAt + 1]! : tmpdir(), 'minidock-bench-inspect-'));
  try {
    const layers = [join(root, '1'), join(root, '2')];
    for (const l of layers) fs.mkdirSync(l);
    const [dirs, generate] = timed(() => writeBase(layers[0]!, entries));
    writeTop(layers[1]!, dirs);
    const rssBefore = process.resourceUsage().maxRSS;

    const count = (it: Iterable<unknown>) => {
      let n = 0;
      for (const _ of it) n++;
      return n;
    };
    const [added, layerSeconds] = timed(() => count(layerChanges([], layers[0]!)));
    const [changed, topSeconds] = timed(() => count(layerChanges([layers[0]!], layers[1]!)));
    const [merged, mergeSeconds] = timed(() => count(mergedEntries(layers)));
    const [efficiency, efficiencySeconds] = timed(() => measureEfficiency(layers));
    const start = process.hrtime.bigint();
    let tarBytes = 0;
    const sink = new Writable({
      write(chunk: Buffer, _enc, done) {
        tarBytes += chunk.length;
        done();
      },
    });
    const exported = exportToo ? await exportTar(layers, sink) : undefined;
    const exportSeconds = Number(process.hrtime.bigint() - start) / 1e9;
    process.stdout.write(
      `${JSON.stringify({
        entries,
        directories: dirs,
        generateSeconds: generate,
        layer1: { changes: added, seconds: layerSeconds },
        layer2: { changes: changed, seconds: topSeconds },
        merged: { entries: merged, seconds: mergeSeconds },
        efficiency: { score: efficiency.score, wastedBytes: efficiency.wastedBytes, seconds: efficiencySeconds },
        ...(exported === undefined ? {} : { export: { entries: exported, bytes: tarBytes, seconds: exportSeconds } }),
        maxRssKBAfterGenerate: rssBefore,
        maxRssKB: process.resourceUsage().maxRSS,
      })}\n`,
    );
  } finally {
    if (keep) process.stderr.write(`kept ${root}\n`);
    else fs.rmSync(root, { recursive: true, force: true });
  }
}

await main();
