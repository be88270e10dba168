/**
 * `minidock layers IMAGE [N|DIGEST]` and `minidock diff IMAGE|CONTAINER [OTHER]`.
 * Both stream: a line (or a JSON array element) per change as it is found.
 */
import { MinidockError } from '../../errors.js';
import {
  historyRows,
  layerChanges,
  pickLayer,
  readImageInfo,
  splitPath,
  viewChanges,
  type Change,
} from '../../inspect/index.js';
import type { Context } from '../context.js';
import { humanSize, printable } from '../output.js';
import { changeLine, entryJSON, findFilesTarget, findImage, imageLayers, layerJSON, out, parseFormat, schemaVersion, type Target } from './inspect-target.js';
import { platformFlag } from './pull.js';

/** The flags of `layers`. */
export interface LayersFlags {
  format?: string;
  tree?: boolean;
  filter?: string;
  remote?: boolean;
  platform?: string;
}

/** A change as JSON: the op, the entry, and for a deletion why and what went. */
function changeJSON(c: Change): string {
  return JSON.stringify({
    op: c.op,
    ...entryJSON(c.entry),
    ...(c.deletedBy !== undefined ? { deletedBy: c.deletedBy } : {}),
    ...(c.removed !== undefined ? { removed: c.removed } : {}),
  });
}

/** Writes changes as a JSON array body, one element per line; returns how many. */
function writeJSONChanges(changes: Iterable<Change>): number {
  let n = 0;
  for (const c of changes) out(`${n++ === 0 ? '' : ',\n'}${changeJSON(c)}`);
  return n;
}

/** A change flattened for changeLine. */
function lineOf(c: Change, name?: string): string {
  return changeLine({ ...c.entry, op: c.op, path: c.path, deletedBy: c.deletedBy, removed: c.removed }, name);
}

function treeName(c: Change, base: number): string {
  const name = c.path.slice(c.path.lastIndexOf('/') + 1);
  return `${'  '.repeat(Math.max(0, c.entry.depth - 1 - base))}${name}${c.entry.kind === 'dir' && c.op !== 'D' ? '/' : ''}`;
}

/** Prints what each layer of an image (or the one chosen) adds, changes and deletes. */
export async function layersCommand(ctx: Context, name: string, which: string | undefined, flags: LayersFlags): Promise<void> {
  const format = parseFormat(flags.format);
  if (flags.remote) {
    const { layersRemote } = await import('./inspect-remote.js');
    await layersRemote(ctx, name, which, { format, platform: platformFlag(flags.platform), filter: flags.filter });
    return;
  }
  const store = await ctx.store();
  const rec = await findImage(store, name);
  const info = await readImageInfo(store, rec);
  const dirs = imageLayers(store, rec);
  const chosen = which === undefined ? info.layers : [pickLayer(info, which)];
  const under = splitPath(flags.filter ?? '');
  const createdBy = new Map(historyRows(info).filter((h) => h.layer !== undefined).map((h) => [h.layer!, h.createdBy]));

  if (format === 'json') {
    out(`{"schemaVersion":${schemaVersion},"image":${JSON.stringify(rec.id)},"layers":[\n`);
    chosen.forEach((l, i) => {
      const head = { ...layerJSON(l), createdBy: createdBy.get(l.index) ?? null };
      out(`${i === 0 ? '' : ',\n'}${JSON.stringify(head).slice(0, -1)},"changes":[\n`);
      writeJSONChanges(layerChanges(dirs.slice(0, l.index - 1), dirs[l.index - 1]!, { under }));
      out('\n]}');
    });
    out('\n]}\n');
    return;
  }
  chosen.forEach((l, i) => {
    if (i > 0) out('\n');
    out(`Layer ${l.index}/${info.layers.length}  ${l.digest}  (${humanSize(l.size)} compressed, ${humanSize(l.unpackedSize ?? 0)} unpacked)\n`);
    out(`  diffID:     ${l.diffID}\n`);
    const by = createdBy.get(l.index);
    if (by) out(`  created by: ${by}\n`);
    for (const c of layerChanges(dirs.slice(0, l.index - 1), dirs[l.index - 1]!, { under })) {
      out(`${flags.tree ? lineOf(c, treeName(c, Math.max(0, under.length - 1))) : lineOf(c)}\n`);
    }
  });
}

/** The flags of `diff`. */
export interface DiffFlags {
  format?: string;
}

function label(t: Target): string {
  return t.kind === 'image' ? t.image.id : t.container.id;
}

/**
 * With one argument, a container's changes against its image; with two,
 * what changes from the first filesystem (image or container) to the
 * second.
 */
export async function diffCommand(ctx: Context, first: string, second: string | undefined, flags: DiffFlags): Promise<void> {
  const format = parseFormat(flags.format);
  const store = await ctx.store();
  const a = await findFilesTarget(store, first);
  let changes: Iterable<Change>;
  let from: string;
  let to: string;
  if (second === undefined) {
    if (a.kind !== 'container') {
      throw new MinidockError('ERR_BAD_ARGUMENT', `diff ${first}: an image has no changes of its own to show`, {
        hint: 'give a container, or two images: minidock diff IMAGE OTHER',
      });
    }
    from = a.container.imageId;
    to = a.container.id;
    changes = layerChanges(a.layers.slice(0, -1), a.layers[a.layers.length - 1]!);
  } else {
    const b = await findFilesTarget(store, second);
    from = label(a);
    to = label(b);
    changes = viewChanges(a.layers, b.layers);
  }
  if (format === 'json') {
    out(`{"schemaVersion":${schemaVersion},"from":${JSON.stringify(from)},"to":${JSON.stringify(to)},"changes":[\n`);
    writeJSONChanges(changes);
    out('\n]}\n');
    return;
  }
  for (const c of changes) out(`${c.op} /${printable(c.path)}\n`);
}
