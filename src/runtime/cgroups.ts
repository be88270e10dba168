/**
 * Resource limits through cgroups, on the unified hierarchy (v2) and on v1
 * or hybrid machines, where the controllers sit on v1 mounts.
 *
 * Each container gets a cgroup named minidock/<id> in every hierarchy it
 * uses: on v1 below the cgroup minidock itself runs in (so limits set above
 * us still apply), on v2 below the root, since v2 forbids processes in
 * inner nodes. The executor moves the container's first process in before
 * it executes anything; remove() deletes the cgroups when it has exited.
 */
import { mkdir, readFile, rmdir, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { MinidockError } from '../errors.js';
import type { ContainerLimits } from '../store/index.js';

const cgroupRoot = '/sys/fs/cgroup';

type Layout = { kind: 'v2'; root: string } | { kind: 'v1'; mounts: Map<string, string>; own: Map<string, string> };

async function isCgroup2(path: string): Promise<boolean> {
  return stat(join(path, 'cgroup.controllers')).then(
    () => true,
    () => false,
  );
}

/** Detects which hierarchy holds the memory, cpu and pids controllers. */
async function detectLayout(): Promise<Layout> {
  if (await isCgroup2(cgroupRoot)) return { kind: 'v2', root: cgroupRoot };
  const mounts = new Map<string, string>();
  const own = new Map<string, string>();
  const mountinfo = await readFile('/proc/self/mountinfo', 'utf8');
  for (const line of mountinfo.split('\n')) {
    const [pre, post] = line.split(' - ');
    if (!pre || !post) continue;
    const [fstype, , superOpts = ''] = post.split(' ');
    if (fstype !== 'cgroup') continue;
    const mountPoint = pre.split(' ')[4]!;
    for (const opt of superOpts.split(',')) {
      if (opt === 'memory' || opt === 'pids' || opt === 'cpu') mounts.set(opt, mountPoint);
    }
  }
  const self = await readFile('/proc/self/cgroup', 'utf8');
  for (const line of self.split('\n')) {
    const [, controllers = '', path = '/'] = line.split(':');
    for (const c of controllers.split(',')) own.set(c, path);
  }
  return { kind: 'v1', mounts, own };
}

/** The cgroups of one container. */
export class ContainerCgroup {
  private constructor(
    /** The cgroup directories, one per hierarchy used. */
    readonly dirs: string[],
  ) {}

  /** The cgroup.procs files the executor writes the container's pid to. */
  get procsFiles(): string[] {
    return this.dirs.map((d) => join(d, 'cgroup.procs'));
  }

  /**
   * Creates the container's cgroups and writes limits into them. Throws a
   * MinidockError naming the controller when a limit cannot be applied.
   */
  static async create(id: string, limits: ContainerLimits): Promise<ContainerCgroup> {
    const layout = await detectLayout();
    const writes: [string, string][] = [];
    const dirs: string[] = [];

    if (layout.kind === 'v2') {
      const parent = join(layout.root, 'minidock');
      await mkdir(parent, { recursive: true });
      await enableControllers(layout.root);
      await enableControllers(parent);
      const dir = join(parent, id);
      await mkdir(dir);
      dirs.push(dir);
      if (limits.memory !== undefined) {
        writes.push([join(dir, 'memory.max'), String(limits.memory)]);
        writes.push([join(dir, 'memory.swap.max'), String(limits.memory)]);
      }
      if (limits.cpus !== undefined) writes.push([join(dir, 'cpu.max'), `${Math.round(limits.cpus * 100000)} 100000`]);
      if (limits.pidsLimit !== undefined) writes.push([join(dir, 'pids.max'), pidsValue(limits.pidsLimit)]);
    } else {
      const needed = new Set(['memory', 'pids', 'cpu']);
      for (const controller of needed) {
        const mount = layout.mounts.get(controller);
        if (mount === undefined) {
          if (controllerLimited(controller, limits)) {
            throw new MinidockError('ERR_CGROUP', `set ${controller} limit: no ${controller} cgroup controller mounted`);
          }
          continue;
        }
        const dir = join(mount, layout.own.get(controller) ?? '/', 'minidock', id);
        await mkdir(dir, { recursive: true });
        dirs.push(dir);
        if (controller === 'memory' && limits.memory !== undefined) {
          writes.push([join(dir, 'memory.limit_in_bytes'), String(limits.memory)]);
          // Docker's default for --memory without --memory-swap: as much swap again.
          const memsw = join(dir, 'memory.memsw.limit_in_bytes');
          if (await exists(memsw)) writes.push([memsw, String(limits.memory * 2)]);
        }
        if (controller === 'cpu' && limits.cpus !== undefined) {
          writes.push([join(dir, 'cpu.cfs_period_us'), '100000']);
          writes.push([join(dir, 'cpu.cfs_quota_us'), String(Math.round(limits.cpus * 100000))]);
        }
        if (controller === 'pids' && limits.pidsLimit !== undefined) {
          writes.push([join(dir, 'pids.max'), pidsValue(limits.pidsLimit)]);
        }
      }
    }

    const cg = new ContainerCgroup(dirs);
    try {
      for (const [file, value] of writes) {
        await writeFile(file, value).catch((err: Error) => {
          throw new MinidockError('ERR_CGROUP', `write ${value} to ${JSON.stringify(file)}: ${err.message}`);
        });
      }
    } catch (err) {
      await cg.remove();
      throw err;
    }
    return cg;
  }

  /** The cgroups at dirs, as recorded for a container. */
  static at(dirs: string[]): ContainerCgroup {
    return new ContainerCgroup(dirs);
  }

  /**
   * Removes the cgroups. The kernel refuses while a dying process is still
   * listed, so this retries briefly.
   */
  async remove(): Promise<void> {
    for (const dir of this.dirs) {
      for (let attempt = 0; ; attempt++) {
        try {
          await rmdir(dir);
          break;
        } catch (err) {
          const code = (err as NodeJS.ErrnoException).code;
          if (code === 'ENOENT') break;
          if (code !== 'EBUSY' || attempt >= 50) throw err;
          await new Promise((r) => setTimeout(r, 10));
        }
      }
    }
  }
}

function controllerLimited(controller: string, limits: ContainerLimits): boolean {
  return (
    (controller === 'memory' && limits.memory !== undefined) ||
    (controller === 'cpu' && limits.cpus !== undefined) ||
    (controller === 'pids' && limits.pidsLimit !== undefined)
  );
}

function pidsValue(n: number): string {
  return n <= 0 ? 'max' : String(n);
}

async function exists(p: string): Promise<boolean> {
  return stat(p).then(
    () => true,
    () => false,
  );
}

/** Enables memory, cpu and pids for the children of a v2 cgroup, as far as its parent offers them. */
async function enableControllers(dir: string): Promise<void> {
  const offered = (await readFile(join(dir, 'cgroup.controllers'), 'utf8')).split(/\s+/);
  const want = ['memory', 'cpu', 'pids'].filter((c) => offered.includes(c));
  if (want.length === 0) return;
  await writeFile(join(dir, 'cgroup.subtree_control'), want.map((c) => `+${c}`).join(' ')).catch(() => {});
}

/** Parses Docker's size syntax ("512m", "1g", "1048576") into bytes. */
export function parseBytes(s: string): number | undefined {
  const m = /^(\d+(?:\.\d+)?)\s*([bkmgt]?)i?b?$/i.exec(s.trim());
  if (!m) return undefined;
  const unit = { '': 1, b: 1, k: 1024, m: 1024 ** 2, g: 1024 ** 3, t: 1024 ** 4 }[m[2]!.toLowerCase()]!;
  return Math.floor(Number(m[1]) * unit);
}
