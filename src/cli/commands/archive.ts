/**
 * `minidock save` and `minidock load`.
 */
import { createReadStream } from 'node:fs';
import type { Readable } from 'node:stream';
import { stat } from 'node:fs/promises';
import { MinidockError, NotFoundError } from '../../errors.js';
import { familiarName, parseReference } from '../../reference.js';
import { contentLock, lookupImage, readRepositories, withLock, type Store } from '../../store/index.js';
import type { SaveItem } from '../../archive/index.js';
import type { Context } from '../context.js';
import { writeOutputFile } from '../output-file.js';

/**
 * The images to save, each with the tags it is named by in the archive:
 * the tag it was given by, none when it was given by id or digest (as
 * Docker does).
 */
async function saveItems(store: Store, images: string[]): Promise<SaveItem[]> {
  const repos = await readRepositories(store);
  const items: SaveItem[] = [];
  for (const image of images) {
    const record = await lookupImage(store, image, parseReference);
    if (!record) throw new NotFoundError(`no such image: ${image}`);
    const ref = /^(?:sha256:)?[0-9a-f]{12,64}$/.test(image) ? undefined : parseReference(image);
    const named = ref?.tag !== undefined ? `${ref.registry}/${ref.repository}:${ref.tag}` : undefined;
    const tags = named !== undefined && repos[named] === record.id ? [named] : [];
    const same = items.find((i) => i.record.id === record.id);
    if (same) same.tags = [...new Set([...same.tags, ...tags])];
    else items.push({ record, tags });
  }
  return items;
}

export async function saveCommand(ctx: Context, images: string[], flags: { output?: string; format?: string }): Promise<void> {
  const { archiveFormats, writeArchive, writeLayoutDir } = await import('../../archive/index.js');
  const format = (flags.format ?? 'docker-archive') as (typeof archiveFormats)[number];
  if (!archiveFormats.includes(format)) {
    throw new MinidockError('ERR_BAD_FLAG', `save: unknown format ${JSON.stringify(flags.format)}`, {
      hint: `use one of ${archiveFormats.join(', ')}`,
    });
  }
  if (format === 'oci-dir' && flags.output === undefined) {
    throw new MinidockError('ERR_BAD_FLAG', 'save: the oci-dir format needs -o DIR');
  }
  if (flags.output === undefined && process.stdout.isTTY) {
    throw new MinidockError('ERR_BAD_FLAG', 'cowardly refusing to save to a terminal', {
      hint: 'use the -o flag or redirect stdout',
    });
  }
  const store = await ctx.store();
  await withLock(
    store,
    contentLock,
    async () => {
      const items = await saveItems(store, images);
      if (format === 'oci-dir') return writeLayoutDir(store, items, flags.output!);
      if (flags.output === undefined) return writeArchive(store, items, format, process.stdout);
      await writeOutputFile('save', flags.output, (out) => writeArchive(store, items, format, out));
    },
    { shared: true },
  );
}

export async function loadCommand(ctx: Context, flags: { input?: string; quiet?: boolean }): Promise<void> {
  const { loadArchive } = await import('../../archive/index.js');
  if (flags.input === undefined && process.stdin.isTTY) {
    throw new MinidockError('ERR_BAD_FLAG', 'requested load from stdin, but stdin is empty', {
      hint: 'use the -i flag or pipe an archive into stdin',
    });
  }
  const store = await ctx.store();
  let input: string | Readable = process.stdin;
  const source = flags.input ?? 'stdin';
  if (flags.input !== undefined) {
    const st = await stat(flags.input).catch((err: NodeJS.ErrnoException) => {
      const why = err.code === 'ENOENT' ? 'no such file or directory' : err.message;
      throw new MinidockError('ERR_NOT_FOUND', `load ${JSON.stringify(flags.input)}: ${why}`);
    });
    input = st.isDirectory() ? flags.input : createReadStream(flags.input);
  }
  const loaded = await loadArchive(store, input, source, { logger: ctx.logger });
  for (const image of loaded) {
    if (image.tags.length === 0) process.stdout.write(`Loaded image ID: ${image.record.id}\n`);
    for (const t of image.tags) {
      const ref = parseReference(t);
      process.stdout.write(`Loaded image: ${familiarName(ref)}:${ref.tag}\n`);
    }
  }
}
