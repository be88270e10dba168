/**
 * Building layer tars in tests, with tar-stream's pack, including the
 * hostile and odd ones no tar tool would write on its own.
 */
import { pack, type Header } from 'tar-stream';

/** One entry of a tar built by makeTar. */
export interface TarEntry {
  name: string;
  type?: Header['type'];
  mode?: number;
  uid?: number;
  gid?: number;
  mtime?: Date;
  linkname?: string;
  devmajor?: number;
  devminor?: number;
  content?: Buffer | string;
  /** Xattrs, written as SCHILY.xattr.* PAX records, byte-exact. */
  xattrs?: Record<string, Buffer | string>;
  /** Other PAX records (ASCII values). */
  pax?: Record<string, string>;
  /** A typeflag character to write instead of type's (e.g. "S"). */
  typeflag?: string;
  /**
   * Write a name or link name too long for the header as GNU tar does
   * ("L" and "K" entries before the header) rather than as PAX records.
   */
  gnuLong?: boolean;
}

const headerField = 100;

const endOfTar = 1024;

/** Returns the bytes of an uncompressed tar holding entries, in order. */
export async function makeTar(entries: TarEntry[]): Promise<Buffer> {
  const parts: Buffer[] = [];
  for (const e of entries) {
    const records = paxRecords(e);
    if (records.length > 0) {
      // pack writes no body for a 'pax-header' entry, so write a file and
      // retype it.
      const paxData = Buffer.concat(records);
      parts.push(withTypeflag(await packOne([{ name: 'PaxHeader', type: 'file' }, paxData]), 'x'));
    }
    let name = e.name;
    let linkname = e.linkname;
    if (e.gnuLong && name.length > headerField) {
      parts.push(await gnuLongEntry('L', name));
      name = name.slice(0, headerField);
    }
    if (e.gnuLong && linkname !== undefined && linkname.length > headerField) {
      parts.push(await gnuLongEntry('K', linkname));
      linkname = linkname.slice(0, headerField);
    }
    let bytes = await packOne([
      {
        name,
        type: e.type ?? 'file',
        mode: e.mode ?? (e.type === 'directory' ? 0o755 : 0o644),
        uid: e.uid ?? 0,
        gid: e.gid ?? 0,
        mtime: e.mtime ?? new Date(1_600_000_000_000),
        linkname,
        devmajor: e.devmajor,
        devminor: e.devminor,
      },
      e.content !== undefined
        ? Buffer.from(e.content)
        : (e.type ?? 'file') === 'file'
          ? Buffer.alloc(0)
          : undefined,
    ]);
    if (e.typeflag !== undefined) {
      bytes = withTypeflag(bytes, e.typeflag);
    }
    parts.push(bytes);
  }
  parts.push(Buffer.alloc(endOfTar));
  return Buffer.concat(parts);
}

// One entry through its own pack, without the end-of-archive blocks, so
// entries (and hand-made PAX headers) can be concatenated.
type PackArgs = [header: Partial<Header> & { name: string }, content: Buffer | undefined];

async function packOne([header, content]: PackArgs): Promise<Buffer> {
  const p = pack();
  if (content === undefined) {
    p.entry(header as Header);
  } else {
    p.entry(header as Header, content);
  }
  p.finalize();
  const chunks: Buffer[] = [];
  for await (const chunk of p) {
    chunks.push(chunk as Buffer);
  }
  const all = Buffer.concat(chunks);
  return all.subarray(0, all.length - endOfTar);
}

// GNU tar's long name ("L") or long link name ("K") entry: the name,
// NUL-terminated, as the data of a pseudo-file "././@LongLink".
async function gnuLongEntry(typeflag: 'L' | 'K', value: string): Promise<Buffer> {
  const data = Buffer.concat([Buffer.from(value), Buffer.alloc(1)]);
  const bytes = await packOne([{ name: '././@LongLink', type: 'file' }, data]);
  return withTypeflag(bytes, typeflag);
}

function paxRecords(e: TarEntry): Buffer[] {
  const records: Buffer[] = [];
  for (const [key, value] of Object.entries(e.pax ?? {})) {
    records.push(paxRecord(key, Buffer.from(value)));
  }
  for (const [name, value] of Object.entries(e.xattrs ?? {})) {
    records.push(paxRecord(`SCHILY.xattr.${name}`, Buffer.from(value)));
  }
  return records;
}

/** Encodes one PAX record "<len> key=value\n", value as raw bytes. */
export function paxRecord(key: string, value: Buffer): Buffer {
  const body = Buffer.concat([Buffer.from(` ${key}=`), value, Buffer.from('\n')]);
  let len = body.length + 1;
  while (String(len).length + body.length !== len) {
    len = String(len).length + body.length;
  }
  return Buffer.concat([Buffer.from(String(len)), body]);
}

// Rewrites the typeflag of the first header block and fixes its checksum.
function withTypeflag(bytes: Buffer, typeflag: string): Buffer {
  const out = Buffer.from(bytes);
  out[156] = typeflag.charCodeAt(0);
  out.fill(0x20, 148, 156);
  let sum = 0;
  for (let i = 0; i < 512; i++) sum += out[i];
  out.write(`${sum.toString(8).padStart(6, '0')}\0 `, 148, 'latin1');
  return out;
}

/** PAX records of a GNU sparse 1.0 entry named name, realSize bytes long. */
export function sparse10(name: string, realSize: number): Record<string, string> {
  return {
    'GNU.sparse.major': '1',
    'GNU.sparse.minor': '0',
    'GNU.sparse.name': name,
    'GNU.sparse.realsize': String(realSize),
  };
}

/**
 * The data of a GNU sparse 1.0 entry: the map (decimal lines, padded to a
 * block), then the segments' bytes.
 */
export function sparse10Data(segments: Array<[offset: number, data: string]>): Buffer {
  const lines = [segments.length, ...segments.flatMap(([off, data]) => [off, data.length])];
  const map = Buffer.from(lines.map((n) => `${n}\n`).join(''));
  const padded = Buffer.alloc(Math.ceil(map.length / 512) * 512);
  map.copy(padded);
  return Buffer.concat([padded, ...segments.map(([, data]) => Buffer.from(data))]);
}

/**
 * Two sparse files as GNU tar writes them, dir/a in PAX format 0.1 and
 * dir/b in 1.0, with the bytes each must unpack to.
 */
export function sparseEntries(dir: string): { entries: TarEntry[]; files: Map<string, Buffer> } {
  const a = Buffer.alloc(1_000_000);
  a.write('head', 0);
  a.write('tail', 999_996);
  const b = Buffer.alloc(2_000_003);
  b.write('mid', 5);
  b.write('end', 2_000_000);
  const entries: TarEntry[] = [
    {
      name: 'GNUSparseFile.0/a',
      content: 'headtail',
      pax: {
        'GNU.sparse.numblocks': '2',
        'GNU.sparse.map': '0,4,999996,4',
        'GNU.sparse.size': String(a.length),
        'GNU.sparse.name': `${dir}/a`,
      },
    },
    {
      name: 'GNUSparseFile.0/b',
      content: sparse10Data([
        [5, 'mid'],
        [2_000_000, 'end'],
      ]),
      pax: sparse10(`${dir}/b`, b.length),
    },
  ];
  return { entries, files: new Map([[`${dir}/a`, a], [`${dir}/b`, b]]) };
}
