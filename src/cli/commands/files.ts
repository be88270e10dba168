/**
 * `minidock ls IMAGE[:PATH]`, `minidock cat IMAGE:PATH` and
 * `minidock export IMAGE|CONTAINER -o FILE`: the merged filesystem, read
 * from the layer directories without mounting anything.
 */
import fs from 'node:fs';
import { pipeline } from 'node:stream/promises';
import { MinidockError, NotFoundError } from '../../errors.js';
import { exportTar, listDirectory, resolvePath, splitImagePath, type LayerEntry } from '../../inspect/index.js';
import type { Context } from '../context.js';
import { writeOutputFile } from '../output-file.js';
import { entryJSON, entrySuffix, findFilesTarget, modeString, out, parseFormat, schemaVersion, shortTime } from './inspect-target.js';
import { printable } from '../output.js';

function lsLine(e: LayerEntry): string {
  const name = printable(e.path.slice(e.path.lastIndexOf('/') + 1));
  const size = e.kind === 'file' ? String(e.size) : '';
  return `${modeString(e.kind, e.mode)}  ${`${e.uid}/${e.gid}`.padEnd(9)} ${size.padStart(10)}  ${shortTime(e.mtime)}  ${name}${e.kind === 'dir' ? '/' : ''}${entrySuffix(e)}\n`;
}

/** Lists a directory (or one entry) of the merged filesystem. */
export async function lsCommand(ctx: Context, arg: string, flags: { format?: string }): Promise<void> {
  const format = parseFormat(flags.format);
  const { image, path = '/' } = splitImagePath(arg);
  const store = await ctx.store();
  const target = await findFilesTarget(store, image);
  // As ls does, a symlink is listed itself, unless the path ends with "/".
  const found = await resolvePath(target.layers, path, { followLast: path.endsWith('/') });
  if (found === undefined) throw new NotFoundError(`ls ${arg}: no such file or directory`);
  const entries: Iterable<LayerEntry> = found.entry.kind === 'dir' ? listDirectory(target.layers, found.parts) : [found.entry];
  if (format === 'json') {
    out(`{"schemaVersion":${schemaVersion},"path":${JSON.stringify(`/${found.parts.join('/')}`)},"type":${JSON.stringify(found.entry.kind)},"entries":[\n`);
    let n = 0;
    for (const e of entries) out(`${n++ === 0 ? '' : ',\n'}${JSON.stringify(entryJSON(e))}`);
    out('\n]}\n');
    return;
  }
  for (const e of entries) out(lsLine(e));
}

/** Copies a regular file of the merged filesystem to stdout, byte for byte. */
export async function catCommand(ctx: Context, arg: string): Promise<void> {
  const { image, path } = splitImagePath(arg);
  if (path === undefined) {
    throw new MinidockError('ERR_BAD_ARGUMENT', `cat ${JSON.stringify(arg)}: want IMAGE:/PATH`, { hint: 'for example minidock cat busybox:/etc/passwd' });
  }
  const store = await ctx.store();
  const target = await findFilesTarget(store, image);
  const found = await resolvePath(target.layers, path);
  if (found === undefined) throw new NotFoundError(`cat ${arg}: no such file`);
  if (found.entry.kind !== 'file') throw new MinidockError('ERR_BAD_ARGUMENT', `cat ${arg}: not a regular file (${found.entry.kind})`);
  await pipeline(fs.createReadStream(found.file), process.stdout, { end: false });
}

/**
 * Writes the merged filesystem as a tar to -o FILE (removed again if the
 * export fails) or to stdout, which must not be a terminal.
 */
export async function exportCommand(ctx: Context, name: string, flags: { output?: string }): Promise<void> {
  const toStdout = flags.output === undefined || flags.output === '-';
  if (toStdout && process.stdout.isTTY) {
    throw new MinidockError('ERR_BAD_ARGUMENT', 'export: refusing to write a tar to a terminal', { hint: 'use -o FILE, or redirect stdout' });
  }
  const store = await ctx.store();
  const target = await findFilesTarget(store, name);
  if (toStdout) {
    await exportTar(target.layers, process.stdout);
    return;
  }
  await writeOutputFile(`export ${name}`, flags.output!, async (out) => {
    await exportTar(target.layers, out);
  });
}
