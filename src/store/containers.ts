/**
 * Container records: containers/<id>/state.json beside the container's
 * upper/ and work/ directories (its writable layer) and rootfs/ (where the
 * overlay is mounted, inside the container's own mount namespace only).
 */
import { mkdir, readdir, readFile, rename, rm, unlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { Digest, DiffID } from '../digest.js';
import { readJSON, removeTree, writeJSON, type Store } from './store.js';

export type ContainerStatus = 'created' | 'running' | 'exited';

/** The limits a container runs under, as given on the command line. */
export interface ContainerLimits {
  memory?: number;
  cpus?: number;
  pidsLimit?: number;
}

/** One mount the executor makes for a container, as the OCI runtime spec names its fields. */
export interface ContainerMount {
  destination: string;
  type: string;
  source: string;
  options: string[];
}

/**
 * What a container was started with, recorded before it starts: the
 * process, its user, the root filesystem's layers and the mounts.
 */
export interface ContainerSpec {
  args: string[];
  env: string[];
  cwd: string;
  user: { uid: number; gid: number; groups: number[] };
  hostname: string;
  tty: boolean;
  stdin: boolean;
  /** The overlay: lower layers by diffID (topmost first), upper and work directories. */
  rootfs: { lower: DiffID[]; upper: string; work: string };
  mounts: ContainerMount[];
}

/** What the store records of one container. */
export interface ContainerRecord {
  id: string;
  name: string;
  /** The reference the user gave. */
  image: string;
  imageId: Digest;
  /** The image's layers, so they stay in the store while the container does. */
  diffIDs: DiffID[];
  args: string[];
  hostname: string;
  created: string;
  status: ContainerStatus;
  pid?: number;
  /** The start time of pid (see runtime/process.ts), which tells it from a later process reusing the pid. */
  pidStart?: string;
  exitCode?: number;
  started?: string;
  finished?: string;
  limits: ContainerLimits;
  /** The container's cgroup directories, so a later rm can remove what a killed run left. */
  cgroups?: string[];
  autoRemove: boolean;
  /** What it was started with (absent for containers created before this was recorded). */
  spec?: ContainerSpec;
  /**
   * The minidock process that created the container and runs it, with its
   * start time: while it lives, a container still "created" is starting,
   * and no prune or rm may take it (or its image's layers) away.
   */
  owner?: { pid: number; start?: string };
}

export function containerDir(store: Store, id: string): string {
  return store.path('containers', id);
}

export function readContainer(store: Store, id: string): Promise<ContainerRecord | undefined> {
  return readJSON<ContainerRecord>(join(containerDir(store, id), 'state.json'));
}

export function writeContainer(store: Store, rec: ContainerRecord): Promise<void> {
  return writeJSON(store, join(containerDir(store, rec.id), 'state.json'), rec);
}

/**
 * Creates the container's directories and writes its first state, in tmp/
 * first: the whole directory appears under containers/ by one rename, so a
 * crash never leaves a container directory without its record. Fails with
 * EEXIST or ENOTEMPTY should the id be taken.
 */
export async function createContainerDirs(store: Store, rec: ContainerRecord): Promise<void> {
  const tmp = store.tmpPath('container');
  try {
    await mkdir(tmp, { mode: 0o700 });
    await Promise.all(['upper', 'work', 'rootfs'].map((d) => mkdir(join(tmp, d))));
    await writeJSON(store, join(tmp, 'state.json'), rec);
    await rename(tmp, containerDir(store, rec.id));
  } catch (err) {
    await rm(tmp, { recursive: true, force: true });
    throw err;
  }
}

/** Lists every container record. */
export async function listContainers(store: Store): Promise<ContainerRecord[]> {
  const ids = await readdir(store.path('containers'));
  const recs = await Promise.all(ids.map((id) => readContainer(store, id)));
  return recs.filter((r): r is ContainerRecord => r !== undefined);
}

/** Removes a container's directory: renamed into tmp/ first, so it vanishes atomically. */
export function removeContainerDir(store: Store, id: string): Promise<void> {
  return removeTree(store, containerDir(store, id), 'rm-container');
}

/**
 * Claims a container name for id: names/<name> is created exclusively, so
 * two processes cannot take the same name, and no lock is needed. A claim
 * whose container no longer exists (left by a crash) is taken over. Returns
 * the id of the container holding the name when it is taken.
 */
export async function claimName(store: Store, name: string, id: string): Promise<string | undefined> {
  const dir = store.path('names');
  await mkdir(dir, { recursive: true, mode: 0o700 });
  const file = join(dir, name);
  for (let attempt = 0; attempt < 3; attempt++) {
    try {
      await writeFile(file, id, { flag: 'wx', mode: 0o600 });
      return undefined;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
    }
    const holder = (await readFile(file, 'utf8').catch(() => '')).trim();
    if (holder !== '' && (await readContainer(store, holder)) !== undefined) return holder;
    await unlink(file).catch(() => {});
  }
  return 'unknown';
}

/** Releases a name claimed by id; a name now held by another container is left alone. */
export async function releaseName(store: Store, name: string, id: string): Promise<void> {
  const file = join(store.path('names'), name);
  const holder = (await readFile(file, 'utf8').catch(() => '')).trim();
  if (holder === id) await unlink(file).catch(() => {});
}
