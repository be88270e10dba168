/**
 * Creating and running a container: the record in the store, the writable
 * layer, the cgroups, then the native executor.
 */
import { chown, lstat, mkdir, readFile, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { hexOf, type Digest } from '../digest.js';
import { MinidockError, NotImplementedError } from '../errors.js';
import type { ImageConfig } from '../image/index.js';
import { silentLogger, type Logger } from '../log.js';
import {
  containerDir,
  claimName,
  createContainerDirs,
  ensureLayerLink,
  hasLayer,
  layerDiffDir,
  listContainers,
  readImageCache,
  writeImageCache,
  releaseName,
  removeContainerDir,
  writeContainer,
  type ContainerLimits,
  type ContainerMount,
  type ContainerRecord,
  type ImageRecord,
  type Store,
} from '../store/index.js';
import { ContainerCgroup } from './cgroups.js';
import { execute } from './executor.js';
import { checkOverlaySupport } from './overlay-support.js';
import { readMergedFile } from './image-files.js';
import { processStartTime } from './process.js';
import { generateName, isValidHostname, isValidName, maxNameLength, newContainerId } from './names.js';
import { buildArgs, buildEnv, parseEnvFile } from './spec.js';
import { resolveUser, type ResolvedUser } from './user.js';

export interface RunOptions {
  /** The image reference as the user typed it, kept for `ps`. */
  imageName: string;
  image: ImageRecord;
  config: ImageConfig;
  name?: string;
  args: string[];
  entrypoint?: string;
  /** -e values in order. */
  env: string[];
  envFiles: string[];
  workdir?: string;
  user?: string;
  hostname?: string;
  tty: boolean;
  interactive: boolean;
  limits: ContainerLimits;
  autoRemove: boolean;
  hostEnv: Record<string, string | undefined>;
  logger?: Logger;
}

/**
 * Runs a container to completion and returns its exit status (128+n after
 * signal n). Throws MinidockError for set-up failures (the CLI's 125) and
 * ContainerExecError when the command cannot be executed (126/127).
 */
export async function runContainer(store: Store, options: RunOptions): Promise<number> {
  const logger = options.logger ?? silentLogger;
  const cc = options.config.config ?? {};

  // Everything that can be refused is decided before the store is touched.
  checkRootForOverlay(store.root);
  const args = buildArgs(cc, options.entrypoint, options.args);
  const overrides: string[] = [];
  for (const file of options.envFiles) {
    const text = await readEnvFile(file).catch((err: NodeJS.ErrnoException) => {
      const why = err.code === 'ENOENT' ? 'no such file or directory' : err.code === 'EISDIR' ? 'is a directory' : err.message;
      throw new MinidockError('ERR_BAD_ENV', `read env file ${JSON.stringify(file)}: ${why}`);
    });
    overrides.push(...parseEnvFile(text, file));
  }
  overrides.push(...options.env);
  if (options.name !== undefined && !isValidName(options.name)) {
    throw new MinidockError('ERR_BAD_NAME', `invalid container name ${JSON.stringify(options.name.slice(0, maxNameLength + 1))}: only [a-zA-Z0-9][a-zA-Z0-9_.-]+ are allowed, at most ${maxNameLength} characters`);
  }
  if (options.hostname !== undefined && !isValidHostname(options.hostname)) {
    throw new MinidockError('ERR_BAD_FLAG', `invalid hostname ${JSON.stringify(options.hostname.slice(0, 65))}: want letters, digits and '-' in dot-separated labels (RFC 1123), at most 64 characters`);
  }

  const lowers = [...options.image.diffIDs].reverse().map((d) => layerDiffDir(store, d));
  checkOverlayLimits(options.image.diffIDs);
  // Links are at least 12 digits long and every container directory's name
  // is as long as any other's: what does not fit now never will.
  checkOptionLength(
    overlayData(options.image.diffIDs.map((d) => hexOf(d).slice(0, 12)), containerDir(store, '0'.repeat(64))),
    options.image.diffIDs.length,
  );
  const user = await resolveImageUser(store, options.image.id, options.user ?? cc.User ?? '', lowers);

  const id = newContainerId();
  const hostname = options.hostname ?? id.slice(0, 12);
  const env = buildEnv({
    image: cc.Env ?? [],
    overrides,
    host: options.hostEnv,
    hostname,
    home: user.home,
    tty: options.tty,
  });

  const rec: ContainerRecord = {
    id,
    name: options.name ?? generateName(),
    image: options.imageName,
    imageId: options.image.id,
    diffIDs: options.image.diffIDs,
    args,
    hostname,
    created: new Date().toISOString(),
    status: 'created',
    limits: options.limits,
    autoRemove: options.autoRemove,
    owner: { pid: process.pid, start: processStartTime(process.pid) },
  };

  await checkOverlaySupport(store);

  // No lock: the container directory is created exclusively (its id is
  // random), its name is claimed exclusively, and the layers are checked
  // after the record exists, so an rmi that runs meanwhile sees the
  // container and keeps them.
  await createContainerDirs(store, rec);
  let data: string;
  try {
    let holder = await claimName(store, rec.name, id);
    // A generated name that is taken is simply drawn again.
    for (let i = 0; holder !== undefined && options.name === undefined && i < 20; i++) {
      rec.name = i < 10 ? generateName() : `${generateName()}_${id.slice(0, 4 + i)}`;
      holder = await claimName(store, rec.name, id);
      if (holder === undefined) await writeContainer(store, rec);
    }
    if (holder !== undefined) {
      throw new MinidockError('ERR_CONFLICT', `create container: the name ${JSON.stringify(rec.name)} is already in use by container ${holder.slice(0, 12)}`, {
        hint: 'remove that container or choose another name',
      });
    }
    for (const d of options.image.diffIDs) {
      if (!(await hasLayer(store, d))) {
        throw new MinidockError('ERR_NOT_FOUND', `create container: layer ${d} of image ${options.image.id} is missing`, {
          hint: 'pull the image again',
        });
      }
    }
    // Layers stored before links existed get theirs now. The layers stay
    // (an rmi sees this container), so their links do too.
    const links: string[] = [];
    for (const d of options.image.diffIDs) links.push(await ensureLayerLink(store, d));
    data = overlayData(links, containerDir(store, id));
    checkOptionLength(data, links.length);
  } catch (err) {
    await releaseName(store, rec.name, id);
    await removeContainerDir(store, id);
    throw err;
  }

  const dir = containerDir(store, id);
  let cgroup: ContainerCgroup | undefined;
  let started: Promise<void> | undefined;
  try {
    await writeEtcFiles(join(dir, 'upper'), lowers, hostname);
    cgroup = await ContainerCgroup.create(id, options.limits);
    rec.cgroups = cgroup.dirs;
    const cwd = options.workdir ?? (cc.WorkingDir || '/');
    rec.spec = {
      args,
      env,
      cwd,
      user: { uid: user.uid, gid: user.gid, groups: user.groups },
      hostname,
      tty: options.tty,
      stdin: options.interactive,
      rootfs: { lower: [...options.image.diffIDs].reverse(), upper: `${dir}/upper`, work: `${dir}/work` },
      mounts: containerMounts(`${dir}/rootfs`),
    };
    await writeContainer(store, rec);
    const status = await execute(
      {
        overlay: { data, mountCwd: store.path('layers'), rootfs: `${dir}/rootfs` },
        hostname,
        args,
        env,
        cwd,
        uid: user.uid,
        gid: user.gid,
        groups: user.groups,
        tty: options.tty,
        stdin: options.interactive,
        cgroupProcs: cgroup.procsFiles,
      },
      {
        logger,
        onStart: (pid) => {
          logger.info(`container ${id.slice(0, 12)} started as pid ${pid}`);
          rec.status = 'running';
          rec.pid = pid;
          rec.pidStart = processStartTime(pid);
          rec.started = new Date().toISOString();
          // Recorded even with --rm: should this process be killed, `ps`
          // and `rm` still find the container and its cgroups.
          started = writeContainer(store, rec).catch(() => {});
        },
      },
    );
    rec.exitCode = status;
    return status;
  } catch (err) {
    const exitCode = (err as { exitCode?: number }).exitCode;
    rec.exitCode = typeof exitCode === 'number' ? exitCode : 125;
    throw err;
  } finally {
    // The "running" record must land before the final one, never after it.
    await started;
    rec.status = 'exited';
    rec.pid = undefined;
    rec.pidStart = undefined;
    rec.finished = new Date().toISOString();
    await cgroup?.remove().catch((err: Error) => logger.warn(`remove cgroup of ${id.slice(0, 12)}: ${err.message}`));
    if (options.autoRemove) {
      await removeContainerDir(store, id);
      await releaseName(store, rec.name, id);
    } else {
      // `rm -f` may have removed the container while it ran: nothing to record then.
      await writeContainer(store, rec).catch((err: NodeJS.ErrnoException) => {
        if (err.code !== 'ENOENT') throw err;
      });
    }
  }
}

/**
 * The mounts native/mounts.c makes inside the container's mount namespace,
 * in its order (kept in step with it by hand), for the record `inspect`
 * shows. Masked and read-only kernel paths are not listed.
 */
function containerMounts(rootfs: string): ContainerMount[] {
  return [
    { destination: '/', type: 'overlay', source: 'overlay', options: ['nodev', `rootfs=${rootfs}`] },
    { destination: '/proc', type: 'proc', source: 'proc', options: ['nosuid', 'nodev', 'noexec'] },
    { destination: '/dev', type: 'tmpfs', source: 'tmpfs', options: ['nosuid', 'strictatime', 'mode=755', 'size=65536k'] },
    { destination: '/dev/pts', type: 'devpts', source: 'devpts', options: ['nosuid', 'noexec', 'newinstance', 'ptmxmode=0666', 'mode=0620'] },
    { destination: '/dev/shm', type: 'tmpfs', source: 'shm', options: ['nosuid', 'nodev', 'noexec', 'mode=1777', 'size=65536k'] },
    { destination: '/sys', type: 'sysfs', source: 'sysfs', options: ['ro', 'nosuid', 'nodev', 'noexec'] },
  ];
}

/** Which images containers use, by image id. */
export async function imagesInUse(store: Store): Promise<Map<Digest, ContainerRecord[]>> {
  const used = new Map<Digest, ContainerRecord[]>();
  for (const c of await listContainers(store)) {
    used.set(c.imageId, [...(used.get(c.imageId) ?? []), c]);
  }
  return used;
}

/**
 * A check for overlay's opaque mark. The xattr binding loads koffi, so it is
 * imported only when a name lookup actually reads an image file.
 */
function opaqueCheck(): (dir: string) => Promise<boolean> {
  return async (dir) => {
    const { lgetxattr } = await import('../sys/index.js');
    const v = lgetxattr(dir, 'trusted.overlay.opaque');
    return v !== undefined && v.toString() === 'y';
  };
}

/**
 * Gives the container its own /etc/hostname and /etc/hosts, as Docker does,
 * by writing them into its writable layer before the overlay is mounted.
 * upper/etc copies the mode and owner of the image's /etc, since overlay
 * shows the upper directory's attributes for a merged directory.
 */
async function writeEtcFiles(upper: string, lowers: string[], hostname: string): Promise<void> {
  let mode = 0o755;
  let uid = 0;
  let gid = 0;
  for (const lower of lowers) {
    const st = await lstat(join(lower, 'etc')).catch(() => undefined);
    if (st === undefined) continue;
    if (!st.isDirectory()) return; // /etc is deleted or not a directory: leave the image's choice alone
    mode = st.mode & 0o7777;
    uid = st.uid;
    gid = st.gid;
    break;
  }
  const etc = join(upper, 'etc');
  await mkdir(etc, { mode });
  await chown(etc, uid, gid);
  await writeFile(join(etc, 'hostname'), `${hostname}\n`, { mode: 0o644 });
  await writeFile(
    join(etc, 'hosts'),
    `127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n127.0.0.1\t${hostname}\n`,
    { mode: 0o644 },
  );
}

/** Reads an env file, refusing anything but a regular file of at most 1 MiB. */
async function readEnvFile(file: string): Promise<string> {
  const st = await stat(file);
  if (!st.isFile()) throw Object.assign(new Error('not a regular file'), { code: st.isDirectory() ? 'EISDIR' : 'EINVAL' });
  if (st.size > 1 << 20) throw Object.assign(new Error('larger than 1 MiB'), { code: 'EFBIG' });
  return readFile(file, 'utf8');
}

/**
 * The most of /etc/passwd or /etc/group read to resolve a user: far more
 * than any real system's, and a bound on what an image can make `run` load.
 */
const maxUserFileBytes = 16 << 20;

/**
 * Resolves a user spec against the image, cached per image: the image never
 * changes, and reading its passwd through the layers may need the xattr
 * binding, whose load would otherwise cost every `run`.
 */
async function resolveImageUser(store: Store, id: Digest, spec: string, lowers: string[]): Promise<ResolvedUser> {
  const cache = await readImageCache(store, id);
  const key = `user:${spec}`;
  const hit = cache[key] as ResolvedUser | undefined;
  if (hit && Number.isInteger(hit.uid) && Number.isInteger(hit.gid) && Array.isArray(hit.groups)) return hit;
  const user = await resolveUser(spec, (path) => readMergedFile(lowers, path, opaqueCheck(), maxUserFileBytes));
  await writeImageCache(store, id, { ...cache, [key]: user });
  return user;
}

/**
 * Refuses, with a clear message, the images overlay cannot stack the way
 * minidock lays layers out. A layer directory is keyed by diffID, so an
 * image that lists the same layer twice would need the same lower directory
 * twice, which overlay refuses.
 */
function checkOverlayLimits(diffIDs: string[]): void {
  const seen = new Map<string, number>();
  diffIDs.forEach((d, i) => {
    const first = seen.get(d);
    if (first !== undefined) {
      // TODO(#4): give a repeated layer a directory of its own.
      throw new NotImplementedError(`an image whose layers ${first + 1} and ${i + 1} are the same layer (${d})`);
    }
    seen.set(d, i);
  });
}

/**
 * The overlay mount options of a container: lower directories by their
 * links under layers/l (relative, since the executor mounts from layers/),
 * topmost first, given the links in the image's order, bottom first.
 */
function overlayData(links: string[], dir: string): string {
  return [
    `lowerdir=${[...links].reverse().map((l) => `l/${l}`).join(':')}`,
    `upperdir=${dir}/upper`,
    `workdir=${dir}/work`,
  ].join(',');
}

/**
 * The container's upper and work directories are named in overlay's mount
 * options, which a ',' ends, a ':' splits (lowerdir) and a '\\' escapes;
 * a root holding one would mount the wrong directories or none.
 */
function checkRootForOverlay(root: string): void {
  const bad = /[,:\\\n]/.exec(root);
  if (bad) {
    throw new MinidockError('ERR_BAD_ROOT', `run a container in store ${JSON.stringify(root)}: overlay mount options cannot carry its ${JSON.stringify(bad[0])}`, {
      hint: 'use a store root (--root or MINIDOCK_ROOT) whose path has no \',\', \':\', \'\\\' or newline',
    });
  }
}

/**
 * mount(2) copies its options into one page and ends them with a NUL in
 * its last byte. 4096 is the smallest page Linux uses (x86-64, most arm64).
 */
const mountDataLimit = 4096 - 1;

function checkOptionLength(data: string, layers: number): void {
  const bytes = Buffer.byteLength(data);
  if (bytes > mountDataLimit) {
    throw new NotImplementedError(
      `an image of ${layers} layers: its overlay mount options take ${bytes} bytes, past the kernel's one-page limit of ${mountDataLimit}`,
    );
  }
}
