/**
 * Keeping the store in shape: `image prune`, `container prune`,
 * `system prune`, `system df` and `system check`.
 */
import { createInterface } from 'node:readline';
import { hexOf } from '../../digest.js';
import { MinidockError } from '../../errors.js';
import {
  checkStore,
  containerSize,
  diskUsage,
  listContainers,
  metadataLock,
  pruneImages,
  pruneUnreferenced,
  withLock,
  type PrunedImage,
  type Store,
} from '../../store/index.js';
import type { Context } from '../context.js';
import { ago, humanSize, table } from '../output.js';
import { inUse, liveStatus, quoteCommand, removeContainer, statusText } from './containers.js';
import { displayName, imageRows, splitTag } from './images.js';

/** A prune the user declined: nothing was removed (Docker's "cancelled"). */
class CancelledError extends MinidockError {
  readonly exitCode = 1;

  constructor(what: string) {
    super('ERR_CANCELLED', `${what} has been cancelled`);
  }
}

/** Reads one line from stdin; resolves with '' at end of input. */
function readLine(): Promise<string> {
  return new Promise((resolveLine) => {
    const rl = createInterface({ input: process.stdin, terminal: false });
    let answered = false;
    rl.once('line', (line) => {
      answered = true;
      rl.close();
      resolveLine(line);
    });
    rl.once('close', () => {
      if (!answered) resolveLine('');
    });
  });
}

/**
 * Asks, as Docker does, before removing anything: the warning and the
 * question go to stderr, the answer is read from stdin (a terminal or not,
 * so `yes | minidock system prune` works), and anything but y or yes
 * cancels. `force` skips the question.
 */
async function confirm(what: string, warning: string, force: boolean | undefined): Promise<void> {
  if (force) return;
  process.stderr.write(`${warning}\nAre you sure you want to continue? [y/N] `);
  const answer = (await readLine()).trim().toLowerCase();
  // A terminal echoes the answer's newline; piped input does not.
  if (!process.stdin.isTTY) process.stderr.write('\n');
  if (answer !== 'y' && answer !== 'yes') throw new CancelledError(what);
}

function imageLines(pruned: PrunedImage[]): string[] {
  const lines: string[] = [];
  for (const p of pruned) {
    for (const key of p.untagged) {
      const [repo, tag] = splitTag(key);
      lines.push(`untagged: ${displayName(repo)}:${tag}`);
    }
    lines.push(`deleted: ${p.id}`);
    for (const d of p.freed.layers) lines.push(`deleted: ${d}`);
  }
  return lines;
}

/** Writes Docker's prune report: a section per kind removed, then the total. */
function report(sections: [string, string[]][], bytes: number): void {
  let out = '';
  for (const [title, lines] of sections) {
    if (lines.length > 0) out += `${title}:\n${lines.join('\n')}\n\n`;
  }
  process.stdout.write(`${out}Total reclaimed space: ${humanSize(bytes)}\n`);
}

/** Removes every container that is not running; returns their ids and the bytes freed. */
async function pruneContainers(store: Store): Promise<{ ids: string[]; bytes: number }> {
  return withLock(store, metadataLock, async () => {
    const ids: string[] = [];
    let bytes = 0;
    for (const c of await listContainers(store)) {
      if (inUse(c)) continue;
      bytes += await containerSize(store, c.id);
      await removeContainer(store, c);
      ids.push(c.id);
    }
    return { ids, bytes };
  });
}

const imageWarning = (all?: boolean) =>
  all
    ? 'WARNING! This will remove all images without at least one container associated to them.'
    : 'WARNING! This will remove all dangling images.';

export async function imagePruneCommand(ctx: Context, flags: { all?: boolean; force?: boolean }): Promise<void> {
  await confirm('image prune', imageWarning(flags.all), flags.force);
  const pruned = await pruneImages(await ctx.store(), { all: flags.all });
  report([['Deleted Images', imageLines(pruned)]], pruned.reduce((n, p) => n + p.freed.bytes, 0));
}

export async function containerPruneCommand(ctx: Context, flags: { force?: boolean }): Promise<void> {
  await confirm('container prune', 'WARNING! This will remove all stopped containers.', flags.force);
  const { ids, bytes } = await pruneContainers(await ctx.store());
  report([['Deleted Containers', ids]], bytes);
}

export async function systemPruneCommand(ctx: Context, flags: { all?: boolean; force?: boolean }): Promise<void> {
  const warning = [
    'WARNING! This will remove:',
    '  - all stopped containers',
    flags.all ? '  - all images without at least one container associated to them' : '  - all dangling images',
    '  - all blobs and layers that no image or container uses',
  ].join('\n');
  await confirm('system prune', warning, flags.force);
  const store = await ctx.store();
  const containers = await pruneContainers(store);
  const images = await pruneImages(store, { all: flags.all });
  const rest = await pruneUnreferenced(store);
  const bytes = containers.bytes + images.reduce((n, p) => n + p.freed.bytes, 0) + rest.bytes;
  report(
    [
      ['Deleted Containers', containers.ids],
      ['Deleted Images', imageLines(images)],
      ['Deleted Blobs and Layers', [...rest.blobs, ...rest.layers.map((d) => `layer ${d}`)]],
    ],
    bytes,
  );
}

/** "1.2MB (50%)": part of whole, as Docker's RECLAIMABLE column shows it. */
function reclaimable(part: number, whole: number): string {
  return whole === 0 ? humanSize(part) : `${humanSize(part)} (${Math.round((100 * part) / whole)}%)`;
}

export async function systemDfCommand(ctx: Context, flags: { verbose?: boolean }): Promise<void> {
  const store = await ctx.store();
  const usage = await diskUsage(store);
  const now = Date.now();

  const activeImages = usage.images.filter((i) => i.containers > 0);
  const usedLayers = usage.layers.filter((l) => l.containers > 0);
  const layerBytes = usage.layers.reduce((n, l) => n + l.size, 0);
  // Images' bytes are their layers', each layer counted once.
  const imageLayers = usage.layers.filter((l) => l.images > 0);
  const imageBytes = imageLayers.reduce((n, l) => n + l.size, 0);
  const imageUnused = imageLayers.filter((l) => l.containers === 0).reduce((n, l) => n + l.size, 0);
  const running = usage.containers.filter((c) => liveStatus(c.rec) === 'running');
  const containerBytes = usage.containers.reduce((n, c) => n + c.size, 0);
  const stoppedBytes = usage.containers.filter((c) => liveStatus(c.rec) !== 'running').reduce((n, c) => n + c.size, 0);
  const orphanBytes = usage.layers.filter((l) => l.images === 0 && l.containers === 0).reduce((n, l) => n + l.size, 0);

  if (!flags.verbose) {
    const row = (type: string, total: number, active: number, bytes: number, free: number) =>
      [type, String(total), String(active), humanSize(bytes), reclaimable(free, bytes)];
    const rows = [
      row('Images', usage.images.length, activeImages.length, imageBytes, imageUnused),
      row('Containers', usage.containers.length, running.length, containerBytes, stoppedBytes),
      row('Layers', usage.layers.length, usedLayers.length, layerBytes, orphanBytes),
    ];
    process.stdout.write(`${table(['TYPE', 'TOTAL', 'ACTIVE', 'SIZE', 'RECLAIMABLE'], rows)}\n`);
    return;
  }

  const byId = new Map(usage.images.map((i) => [i.rec.id, i]));
  const imageTable = imageRows(
    usage.images.map((i) => i.rec),
    Object.fromEntries(usage.images.flatMap((i) => i.tags.map((t) => [t, i.rec.id]))),
  ).map((r) => {
    const u = byId.get(r.rec.id)!;
    const sizes = [u.size, u.shared, u.unique].map(humanSize);
    return [r.repo, r.tag, hexOf(r.rec.id).slice(0, 12), ago(r.rec.created, now), ...sizes, String(u.containers)];
  });
  const containerTable = usage.containers
    .sort((a, b) => b.rec.created.localeCompare(a.rec.created))
    .map(({ rec, size }) => [
      rec.id.slice(0, 12),
      rec.image,
      quoteCommand(rec.args),
      humanSize(size),
      ago(rec.created, now),
      statusText(rec, now),
      rec.name,
    ]);
  const layerTable = usage.layers
    .sort((a, b) => b.size - a.size || a.diffID.localeCompare(b.diffID))
    .map((l) => [hexOf(l.diffID).slice(0, 12), humanSize(l.size), String(l.images), String(l.containers)]);
  process.stdout.write(
    [
      'Images space usage:',
      '',
      table(['REPOSITORY', 'TAG', 'IMAGE ID', 'CREATED', 'SIZE', 'SHARED SIZE', 'UNIQUE SIZE', 'CONTAINERS'], imageTable),
      '',
      'Containers space usage:',
      '',
      table(['CONTAINER ID', 'IMAGE', 'COMMAND', 'SIZE', 'CREATED', 'STATUS', 'NAMES'], containerTable),
      '',
      'Layers space usage:',
      '',
      table(['LAYER ID', 'SIZE', 'IMAGES', 'CONTAINERS'], layerTable),
      '',
    ].join('\n'),
  );
}

/**
 * Prints one line per problem on stdout. Exits 0 when the store is sound;
 * 1 when problems remain (without --repair, all of them; with it, images
 * left incomplete, which a pull restores).
 */
export async function systemCheckCommand(ctx: Context, flags: { repair?: boolean }): Promise<number> {
  const problems = await checkStore(await ctx.store(), { repair: flags.repair });
  for (const p of problems) {
    process.stdout.write(`${p.kind} ${p.subject}: ${p.message}${p.repaired ? ' (repaired)' : ''}\n`);
  }
  const left = problems.filter((p) => !p.repaired);
  if (left.length === 0) {
    if (problems.length === 0) process.stderr.write('store is sound\n');
    return 0;
  }
  const hint = flags.repair
    ? 'pull the images named above again to restore what was removed'
    : 'run minidock system check --repair to remove what is wrong, then pull again';
  const count = (n: number) => `${n} problem${n === 1 ? '' : 's'}`;
  const repaired = problems.length - left.length;
  const what = repaired > 0 ? `${count(repaired)} repaired, ${count(left.length)} left` : `${count(left.length)} found`;
  process.stderr.write(`minidock: ${what}\nhint: ${hint}\n`);
  return 1;
}
