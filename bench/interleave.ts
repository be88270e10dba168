/**
 * Times commands in turn, round after round (A B C, A B C, …), so that a
 * machine whose load changes during the benchmark charges every command
 * alike; hyperfine runs all of one command first. Prints a markdown table
 * of wall time and CPU time (user + system, from GNU time) per command.
 *
 *   node dist/bench/interleave.js ROUNDS NAME=COMMAND...
 *
 * Each COMMAND runs under /bin/sh; two warm-up rounds come first. A command
 * that fails stops the benchmark.
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

function quantile(values: number[], q: number): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.round((sorted.length - 1) * q)]!;
}

function main(args: string[]): number {
  const rounds = Number(args[0]);
  const commands = args.slice(1).map((a) => {
    const eq = a.indexOf('=');
    return { name: a.slice(0, eq), command: a.slice(eq + 1), wall: [] as number[], cpu: [] as number[] };
  });
  if (!Number.isInteger(rounds) || rounds < 1 || commands.length === 0 || commands.some((c) => c.name === '')) {
    process.stderr.write('usage: node dist/bench/interleave.js ROUNDS NAME=COMMAND...\n');
    return 2;
  }
  const dir = mkdtempSync(join(tmpdir(), 'minidock-interleave-'));
  const times = join(dir, 'time');
  try {
    for (let round = -2; round < rounds; round++) {
      for (const c of commands) {
        const start = process.hrtime.bigint();
        const r = spawnSync('/usr/bin/time', ['-f', '%U %S', '-o', times, '/bin/sh', '-c', c.command], { stdio: 'ignore' });
        const wall = Number(process.hrtime.bigint() - start) / 1e6;
        if (r.status !== 0) {
          process.stderr.write(`interleave: ${c.name} failed (status ${r.status})\n`);
          return 1;
        }
        const [user, sys] = readFileSync(times, 'utf8').trim().split('\n').pop()!.split(' ').map(Number);
        if (round >= 0) {
          c.wall.push(wall);
          c.cpu.push((user! + sys!) * 1000);
        }
      }
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
  const ms = (v: number) => v.toFixed(0);
  process.stdout.write('| Command | Wall min [ms] | Wall median [ms] | Wall p75 [ms] | CPU median [ms] |\n');
  process.stdout.write('|:---|---:|---:|---:|---:|\n');
  for (const c of commands) {
    const cells = [quantile(c.wall, 0), quantile(c.wall, 0.5), quantile(c.wall, 0.75), quantile(c.cpu, 0.5)].map(ms);
    process.stdout.write(`| \`${c.name}\` | ${cells.join(' | ')} |\n`);
  }
  return 0;
}

process.exitCode = main(process.argv.slice(2));
