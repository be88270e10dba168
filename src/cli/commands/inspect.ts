/**
 * `minidock inspect IMAGE|CONTAINER` and `minidock history IMAGE`.
 */
import { hexOf } from '../../digest.js';
import { MinidockError } from '../../errors.js';
import { formatPlatform } from '../../image/index.js';
import {
  historyRows,
  measureEfficiency,
  readImageInfo,
  type Efficiency,
  type ImageInfo,
} from '../../inspect/index.js';
import { familiarName } from '../../reference.js';
import type { ContainerRecord } from '../../store/index.js';
import type { Context } from '../context.js';
import { ago, humanSize, printable, table } from '../output.js';
import { liveStatus } from './containers.js';
import { findImage, findTarget, layerJSON, out, parseFormat, runConfigJSON, schemaVersion } from './inspect-target.js';
import { platformFlag } from './pull.js';

/** The flags of `inspect`, as commander gives them. */
export interface InspectFlags {
  format?: string;
  type?: string;
  efficiency?: boolean;
  failUnder?: string;
  remote?: boolean;
  platform?: string;
  raw?: string;
}

/** The exit status of `inspect --fail-under` when the score is below the threshold. */
export const failedGateStatus = 1;

function parseThreshold(value: string | undefined): number | undefined {
  if (value === undefined) return undefined;
  const n = Number(value);
  if (value.trim() === '' || !Number.isFinite(n) || n < 0 || n > 1) {
    throw new MinidockError('ERR_BAD_ARGUMENT', `--fail-under ${JSON.stringify(value)}: want a number from 0 to 1`, {
      hint: 'for example --fail-under 0.9',
    });
  }
  return n;
}

function parseType(value: string | undefined): 'image' | 'container' | undefined {
  if (value === undefined || value === 'image' || value === 'container') return value;
  throw new MinidockError('ERR_BAD_ARGUMENT', `--type ${JSON.stringify(value)}: want image or container`);
}

/** Runs `inspect` and returns the exit status. */
export async function inspectCommand(ctx: Context, name: string, flags: InspectFlags): Promise<number> {
  const format = parseFormat(flags.format);
  const threshold = parseThreshold(flags.failUnder);
  const type = parseType(flags.type);
  if (flags.raw !== undefined && flags.raw !== 'manifest' && flags.raw !== 'config') {
    throw new MinidockError('ERR_BAD_ARGUMENT', `--raw ${JSON.stringify(flags.raw)}: want manifest or config`);
  }
  if (flags.remote) {
    if (flags.efficiency || threshold !== undefined) {
      throw new MinidockError('ERR_BAD_ARGUMENT', 'inspect --remote cannot measure efficiency', {
        hint: 'efficiency needs the layers: pull the image, then run inspect --efficiency',
      });
    }
    const { inspectRemote } = await import('./inspect-remote.js');
    await inspectRemote(ctx, name, { format, platform: platformFlag(flags.platform), raw: flags.raw });
    return 0;
  }
  const store = await ctx.store();
  const target = await findTarget(store, name, flags.efficiency || threshold !== undefined || flags.raw ? 'image' : type);
  if (target.kind === 'container') {
    printContainer(target.container, format);
    return 0;
  }
  const info = await readImageInfo(store, target.image);
  if (flags.raw !== undefined) {
    process.stdout.write(flags.raw === 'manifest' ? info.rawManifest : info.rawConfig);
    return 0;
  }
  const efficiency = flags.efficiency || threshold !== undefined ? measureEfficiency(target.layers) : undefined;
  if (format === 'json') out(`${JSON.stringify(imageJSON(info, efficiency), null, 2)}\n`);
  else out(imageText(info, efficiency));
  if (efficiency !== undefined && threshold !== undefined && efficiency.score < threshold) {
    process.stderr.write(`minidock: efficiency ${efficiency.score.toFixed(4)} is below the threshold ${threshold}\n`);
    return failedGateStatus;
  }
  return 0;
}

function imageJSON(info: ImageInfo, efficiency: Efficiency | undefined): Record<string, unknown> {
  const rec = info.record;
  const cc = info.config.config ?? {};
  return {
    schemaVersion,
    kind: 'image',
    id: rec.id,
    repoTags: info.repoTags,
    repoDigests: rec.repoDigests,
    digest: rec.manifestDigest,
    ...(rec.indexDigest !== undefined ? { indexDigest: rec.indexDigest } : {}),
    mediaType: rec.manifestMediaType,
    manifest: info.rawManifest.toString('utf8'),
    config: info.config,
    platform: rec.platform,
    created: info.config.created ?? null,
    author: info.config.author ?? null,
    size: info.layers.reduce((s, l) => s + (l.unpackedSize ?? 0), 0),
    layers: info.layers.map((l) => ({ ...layerJSON(l), entries: l.entries ?? null })),
    ...runConfigJSON(info.config),
    exposedPorts: Object.keys(cc.ExposedPorts ?? {}),
    volumes: Object.keys(cc.Volumes ?? {}),
    stopSignal: cc.StopSignal ?? null,
    ...(efficiency !== undefined ? { efficiency: efficiencyJSON(efficiency) } : {}),
  };
}

function efficiencyJSON(e: Efficiency): Record<string, unknown> {
  return {
    score: e.score,
    wastedBytes: e.wastedBytes,
    potentialWastedBytes: e.potentialWastedBytes,
    totalBytes: e.totalBytes,
    layers: e.layers.map((l, i) => ({ index: i + 1, bytes: l.bytes, wastedBytes: l.wastedBytes })),
    offenderCount: e.offenderCount,
    offenders: e.offenders,
  };
}

const field = (label: string, value: string) => `${`${label}:`.padEnd(13)}${value}\n`;
const list = (label: string, values: string[]) =>
  values.length === 0 ? field(label, '-') : `${label}:\n${values.map((v) => `  ${v}\n`).join('')}`;

function imageText(info: ImageInfo, efficiency: Efficiency | undefined): string {
  const rec = info.record;
  const cc = info.config.config ?? {};
  let s = '';
  s += field('Id', rec.id);
  s += list('Tags', info.repoTags.map((t) => displayTag(t)));
  s += list('Digests', rec.repoDigests);
  s += field('Manifest', `${rec.manifestDigest} (${rec.manifestMediaType})`);
  if (rec.indexDigest !== undefined) s += field('Index', rec.indexDigest);
  s += field('Platform', formatPlatform(rec.platform));
  s += field('Created', info.config.created ?? '-');
  if (info.config.author) s += field('Author', info.config.author);
  s += field('Size', humanSize(info.layers.reduce((n, l) => n + (l.unpackedSize ?? 0), 0)));
  s += field('Entrypoint', cc.Entrypoint ? JSON.stringify(cc.Entrypoint) : '-');
  s += field('Cmd', cc.Cmd ? JSON.stringify(cc.Cmd) : '-');
  s += field('WorkingDir', cc.WorkingDir || '-');
  s += field('User', cc.User || '-');
  s += list('Env', cc.Env ?? []);
  s += list('Labels', Object.entries(cc.Labels ?? {}).map(([k, v]) => `${k}=${v}`));
  if (cc.ExposedPorts) s += list('Ports', Object.keys(cc.ExposedPorts));
  if (cc.Volumes) s += list('Volumes', Object.keys(cc.Volumes));
  s += `Layers:\n`;
  const rows = info.layers.map((l) => [
    String(l.index),
    l.digest,
    l.diffID,
    humanSize(l.size),
    l.unpackedSize === undefined ? '-' : humanSize(l.unpackedSize),
    l.entries === undefined ? '-' : String(l.entries),
    l.mediaType,
  ]);
  s += indent(table(['#', 'DIGEST', 'DIFF ID', 'SIZE', 'UNPACKED', 'ENTRIES', 'MEDIA TYPE'], rows));
  if (efficiency !== undefined) s += efficiencyText(efficiency);
  return s;
}

function indent(text: string): string {
  return `${text
    .split('\n')
    .map((l) => `  ${l}`)
    .join('\n')}\n`;
}

function displayTag(key: string): string {
  const i = key.lastIndexOf(':');
  const repo = key.slice(0, i);
  const slash = repo.indexOf('/');
  return `${familiarName({ registry: repo.slice(0, slash), repository: repo.slice(slash + 1) })}${key.slice(i)}`;
}

/** The efficiency section of `inspect --efficiency`, in dive's terms. */
export function efficiencyText(e: Efficiency): string {
  let s = 'Efficiency:\n';
  s += `  Score:              ${(e.score * 100).toFixed(2)} % (${e.score.toFixed(4)})\n`;
  s += `  Wasted:             ${humanSize(e.wastedBytes)} (${e.wastedBytes} bytes overwritten or deleted by later layers)\n`;
  s += `  Potential wasted:   ${humanSize(e.potentialWastedBytes)} (${e.potentialWastedBytes} bytes, as dive counts it)\n`;
  s += `  Layers:\n`;
  s += indent(
    indent(
      table(
        ['#', 'BYTES', 'WASTED'],
        e.layers.map((l, i) => [String(i + 1), String(l.bytes), String(l.wastedBytes)]),
      ),
    ).trimEnd(),
  );
  const shown = e.offenders.length < e.offenderCount ? ` (largest ${e.offenders.length} of ${e.offenderCount})` : '';
  s += `  Offenders${shown}:\n`;
  if (e.offenders.length === 0) return `${s}    none\n`;
  s += indent(
    indent(
      table(
        ['COUNT', 'TOTAL SPACE', 'WASTED', 'LAYERS', 'PATH'],
        e.offenders.map((o) => [String(o.layers.length), String(o.totalBytes), String(o.wastedBytes), o.layers.join(','), `/${printable(o.path)}`]),
      ),
    ).trimEnd(),
  );
  return s;
}

function containerJSON(c: ContainerRecord): Record<string, unknown> {
  const status = liveStatus(c);
  return {
    schemaVersion,
    kind: 'container',
    id: c.id,
    name: c.name,
    image: c.image,
    imageId: c.imageId,
    created: c.created,
    state: {
      status,
      running: status === 'running',
      pid: status === 'running' ? (c.pid ?? null) : null,
      exitCode: c.exitCode ?? null,
      startedAt: c.started ?? null,
      finishedAt: c.finished ?? null,
    },
    hostname: c.hostname,
    args: c.args,
    limits: { memory: c.limits.memory ?? null, cpus: c.limits.cpus ?? null, pidsLimit: c.limits.pidsLimit ?? null },
    autoRemove: c.autoRemove,
    layers: c.diffIDs,
    cgroups: c.cgroups ?? [],
    mounts: c.spec?.mounts ?? [],
    spec: c.spec ?? null,
  };
}

function printContainer(c: ContainerRecord, format: 'text' | 'json'): void {
  const j = containerJSON(c);
  if (format === 'json') {
    out(`${JSON.stringify(j, null, 2)}\n`);
    return;
  }
  const state = j.state as { status: string; pid: number | null; exitCode: number | null };
  let s = '';
  s += field('Id', c.id);
  s += field('Name', c.name);
  s += field('Image', `${c.image} (${c.imageId})`);
  s += field('Created', c.created);
  s += field('State', state.status);
  s += field('Pid', state.pid === null ? '-' : String(state.pid));
  s += field('ExitCode', state.exitCode === null ? '-' : String(state.exitCode));
  if (c.started) s += field('Started', c.started);
  if (c.finished) s += field('Finished', c.finished);
  s += field('Hostname', c.hostname);
  s += field('Command', JSON.stringify(c.args));
  const l = c.limits;
  s += field('Memory', l.memory === undefined ? 'unlimited' : `${l.memory} bytes`);
  s += field('Cpus', l.cpus === undefined ? 'unlimited' : String(l.cpus));
  s += field('PidsLimit', l.pidsLimit === undefined ? 'unlimited' : String(l.pidsLimit));
  if (c.spec) {
    s += field('User', `${c.spec.user.uid}:${c.spec.user.gid}${c.spec.user.groups.length ? ` (groups ${c.spec.user.groups.join(',')})` : ''}`);
    s += field('WorkingDir', c.spec.cwd);
    s += field('Tty', String(c.spec.tty));
    s += list('Env', c.spec.env);
    s += list('Mounts', c.spec.mounts.map((m) => `${m.destination} ${m.type} ${m.source} (${m.options.join(',')})`));
  } else {
    s += field('Spec', 'not recorded (the container predates spec records)');
  }
  s += list('Layers', [...c.diffIDs].reverse());
  out(s);
}

/** The flags of `history`. */
export interface HistoryFlags {
  format?: string;
  noTrunc?: boolean;
  human?: boolean;
}

/** Docker's width for CREATED BY in a truncated history. */
const createdByWidth = 45;

/** Prints an image's history: a table newest first, or the JSON document oldest first. */
export async function historyCommand(ctx: Context, name: string, flags: HistoryFlags): Promise<void> {
  const format = parseFormat(flags.format);
  const store = await ctx.store();
  const info = await readImageInfo(store, await findImage(store, name));
  const rows = historyRows(info);
  if (format === 'json') {
    const json = {
      schemaVersion,
      id: info.record.id,
      history: rows.map((r, i) => ({
        index: i + 1,
        created: r.created ?? null,
        createdBy: r.createdBy,
        comment: r.comment ?? '',
        author: r.author ?? '',
        emptyLayer: r.emptyLayer,
        layer: r.layer ?? null,
        diffID: r.diffID ?? null,
        size: r.size,
      })),
    };
    out(`${JSON.stringify(json, null, 2)}\n`);
    return;
  }
  const human = flags.human !== false;
  const now = Date.now();
  const id = flags.noTrunc ? info.record.id : hexOf(info.record.id).slice(0, 12);
  const lines = [...rows].reverse().map((r, i) => {
    const by = printable(r.createdBy.replace(/\s+/g, ' '));
    return [
      i === 0 ? id : '<missing>',
      human ? ago(r.created, now) : (r.created ?? 'N/A'),
      flags.noTrunc || by.length <= createdByWidth ? by : `${by.slice(0, createdByWidth - 1)}…`,
      human ? humanSize(r.size) : String(r.size),
      r.emptyLayer ? '<empty>' : String(r.layer),
      r.comment ?? '',
    ];
  });
  out(`${table(['IMAGE', 'CREATED', 'CREATED BY', 'SIZE', 'LAYER', 'COMMENT'], lines)}\n`);
}
