/**
 * `minidock ps` and `minidock rm`.
 */
import { MinidockError, NotFoundError } from '../../errors.js';
import { isProcessAlive } from '../../runtime/process.js';
import {
  listContainers,
  metadataLock,
  releaseName,
  removeContainerDir,
  withLock,
  type ContainerRecord,
  type Store,
} from '../../store/index.js';
import type { Context } from '../context.js';
import { ago, humanDuration, table } from '../output.js';

/** The state as seen now: a "running" record whose process is gone ended without being recorded. */
export function liveStatus(c: ContainerRecord): ContainerRecord['status'] {
  return c.status === 'running' && !isProcessAlive(c.pid, c.pidStart) ? 'exited' : c.status;
}

/**
 * True while the container is running, or is being started by a minidock
 * process that is still alive: neither may be removed from under it.
 */
export function inUse(c: ContainerRecord): boolean {
  const status = liveStatus(c);
  return status === 'running' || (status === 'created' && c.owner !== undefined && isProcessAlive(c.owner.pid, c.owner.start));
}

export function statusText(c: ContainerRecord, now: number): string {
  switch (liveStatus(c)) {
    case 'created':
      return 'Created';
    case 'running':
      return `Up ${humanDuration(now - Date.parse(c.started ?? c.created))}`;
    case 'exited':
      return c.exitCode === undefined
        ? 'Exited (unknown)'
        : `Exited (${c.exitCode}) ${ago(c.finished ?? c.started ?? c.created, now)}`;
  }
}

export function quoteCommand(args: string[]): string {
  const s = args.join(' ');
  return JSON.stringify(s.length > 20 ? `${s.slice(0, 19)}…` : s);
}

export async function psCommand(ctx: Context, flags: { all?: boolean; quiet?: boolean; noTrunc?: boolean }): Promise<void> {
  const store = await ctx.store();
  const now = Date.now();
  const containers = (await listContainers(store))
    .filter((c) => flags.all || liveStatus(c) === 'running')
    .sort((a, b) => b.created.localeCompare(a.created));
  const id = (c: ContainerRecord) => (flags.noTrunc ? c.id : c.id.slice(0, 12));
  if (flags.quiet) {
    process.stdout.write(containers.map((c) => `${id(c)}\n`).join(''));
    return;
  }
  const rows = containers.map((c) => [
    id(c),
    c.image,
    flags.noTrunc ? JSON.stringify(c.args.join(' ')) : quoteCommand(c.args),
    ago(c.created, now),
    statusText(c, now),
    c.name,
  ]);
  process.stdout.write(`${table(['CONTAINER ID', 'IMAGE', 'COMMAND', 'CREATED', 'STATUS', 'NAMES'], rows)}\n`);
}

/** Finds a container by full id, unique id prefix, or name. */
export async function findContainer(store: Store, text: string): Promise<ContainerRecord> {
  // An empty prefix would match every container ("rm $UNSET").
  if (text === '') throw new MinidockError('ERR_BAD_ARGUMENT', 'a container name or id cannot be empty');
  const all = await listContainers(store);
  const exact = all.find((c) => c.id === text || c.name === text);
  if (exact) return exact;
  const matches = all.filter((c) => c.id.startsWith(text));
  if (matches.length === 1) return matches[0]!;
  if (matches.length > 1) throw new MinidockError('ERR_AMBIGUOUS', `container id prefix ${JSON.stringify(text)} matches ${matches.length} containers`);
  throw new NotFoundError(`no such container: ${text}`);
}

export async function rmCommand(ctx: Context, names: string[], flags: { force?: boolean }): Promise<number> {
  const store = await ctx.store();
  let status = 0;
  for (const name of names) {
    try {
      await withLock(store, metadataLock, async () => {
        const c = await findContainer(store, name);
        if (liveStatus(c) === 'created' && inUse(c)) {
          throw new MinidockError('ERR_CONFLICT', `cannot remove container ${name}: container is starting`, {
            hint: 'try again once it runs',
          });
        }
        if (liveStatus(c) === 'running') {
          if (!flags.force) {
            throw new MinidockError('ERR_CONFLICT', `cannot remove container ${name}: container is running`, {
              hint: 'use rm -f to kill and remove it',
            });
          }
          // The executor relays the death of the container's init as 137.
          try {
            process.kill(c.pid!, 'SIGKILL');
          } catch {}
        }
        await removeContainer(store, c);
      });
      process.stdout.write(`${name}\n`);
    } catch (err) {
      if (!(err instanceof MinidockError) || names.length === 1) throw err;
      process.stderr.write(`minidock: ${err.message}\n`);
      status = 125; // as for one name: minidock's own error
    }
  }
  return status;
}

/**
 * Removes a stopped container: its directory, its name and the cgroups a
 * killed run left. Call with the metadata lock held.
 */
export async function removeContainer(store: Store, c: ContainerRecord): Promise<void> {
  await removeContainerDir(store, c.id);
  await releaseName(store, c.name, c.id);
  // Left behind only when the minidock that ran it was killed.
  const { ContainerCgroup } = await import('../../runtime/cgroups.js');
  await ContainerCgroup.at(c.cgroups ?? []).remove().catch(() => {});
}
