/**
 * GNU sparse files: the four ways GNU tar stores a file with holes, read
 * as Go's archive/tar reads them (and so as Docker and podman do), written
 * with the holes left as holes.
 *
 * - old GNU (typeflag "S"): the map in the header and in extension blocks
 *   (PaxTap reads those, see TappedEntry.sparse);
 * - PAX 0.0: GNU.sparse.offset and GNU.sparse.numbytes records, repeated;
 * - PAX 0.1: one GNU.sparse.map record, "offset,length,offset,length...";
 * - PAX 1.0: GNU.sparse.major=1, minor=0; the map is at the start of the
 *   entry's data, decimal numbers one a line, padded to a 512-byte block.
 *
 * In each, the entry's data is the segments' bytes, one after another,
 * and the file's real size comes from the header or a record.
 */
import fs from 'node:fs';
import { parsePaxRecords, type SparseMap, type TappedEntry } from './pax-tap.js';

/** How an entry's data makes a sparse file. */
export interface SparseSpec {
  /** Undefined when the map is at the start of the data (PAX 1.0). */
  segments?: Array<[offset: number, length: number]>;
  realSize: number;
}

/** A sparse entry that cannot be applied; the caller names the entry. */
export class BadSparseError extends Error {}

// Go's archive/tar caps the PAX 1.0 map the same way.
const maxMapBytes = 1024 * 1024;

/**
 * Returns how to write the entry as a sparse file, or undefined when it is
 * not one. Throws BadSparseError for sparse records minidock cannot read.
 */
export function sparseSpecOf(
  pax: Record<string, string> | null | undefined,
  tapped: TappedEntry,
): SparseSpec | undefined {
  if (tapped.sparse !== undefined) {
    return checked(tapped.sparse);
  }
  if (pax === null || pax === undefined) {
    return undefined;
  }
  if (!Object.keys(pax).some((k) => k.startsWith('GNU.sparse.'))) {
    return undefined;
  }

  const major = pax['GNU.sparse.major'];
  const minor = pax['GNU.sparse.minor'];
  if (major !== undefined || minor !== undefined) {
    if (major !== '1' || minor !== '0') {
      throw new BadSparseError(`GNU sparse format ${major}.${minor} is not known`);
    }
    return { realSize: realSizeOf(pax) };
  }

  const realSize = realSizeOf(pax);
  const map = pax['GNU.sparse.map'];
  if (map !== undefined) {
    const numbers = map === '' ? [] : map.split(',').map((n) => number(n, 'GNU.sparse.map'));
    return checked({ segments: withCount(pairs(numbers), pax), realSize });
  }

  // 0.0: the records repeat, which tar-stream's object keeps only the last
  // of, so they are read from the raw header.
  const numbers: number[] = [];
  for (const r of parsePaxRecords(tapped.pax ?? Buffer.alloc(0))) {
    if (r.key === 'GNU.sparse.offset' || r.key === 'GNU.sparse.numbytes') {
      if ((numbers.length % 2 === 0) !== (r.key === 'GNU.sparse.offset')) {
        throw new BadSparseError('GNU.sparse.offset and GNU.sparse.numbytes records out of turn');
      }
      numbers.push(number(r.value.toString('latin1'), r.key));
    }
  }
  return checked({ segments: withCount(pairs(numbers), pax), realSize });
}

// GNU tar names the size GNU.sparse.size in 0.x, GNU.sparse.realsize in
// 1.0; Go takes either in both.
function realSizeOf(pax: Record<string, string>): number {
  const size = pax['GNU.sparse.size'] ?? pax['GNU.sparse.realsize'];
  return number(size, 'GNU.sparse.size');
}

// GNU tar also writes the count of segments; where it is given, it must
// agree with the map.
function withCount(segments: Array<[number, number]>, pax: Record<string, string>) {
  const count = pax['GNU.sparse.numblocks'];
  if (count !== undefined && number(count, 'GNU.sparse.numblocks') !== segments.length) {
    const why = `does not match the map's ${segments.length} segments`;
    throw new BadSparseError(`GNU.sparse.numblocks ${count} ${why}`);
  }
  return segments;
}

function number(text: string | undefined, what: string): number {
  if (text === undefined || !/^\d{1,16}$/.test(text)) {
    throw new BadSparseError(`${what} ${JSON.stringify(text ?? '')} is not a size`);
  }
  const n = Number(text);
  if (!Number.isSafeInteger(n)) {
    throw new BadSparseError(`${what} ${text} is too large`);
  }
  return n;
}

function pairs(numbers: number[]): Array<[number, number]> {
  if (numbers.length % 2 !== 0) {
    throw new BadSparseError('the sparse map has an odd count of numbers');
  }
  const out: Array<[number, number]> = [];
  for (let i = 0; i < numbers.length; i += 2) {
    out.push([numbers[i], numbers[i + 1]]);
  }
  return out;
}

// Segments in order, not overlapping, inside the file (as Go checks).
function checked<T extends SparseMap>(spec: T): T {
  let end = 0;
  for (const [offset, length] of spec.segments) {
    if (offset < end || offset + length > spec.realSize) {
      const why = "is out of order or past the file's end";
      throw new BadSparseError(`sparse segment ${offset}+${length} ${why}`);
    }
    end = offset + length;
  }
  return spec;
}

/**
 * Writes a sparse file to fd from the entry's data chunks: each segment's
 * bytes at its offset, the holes left unwritten, the file cut to its real
 * size. Returns the bytes written. Throws BadSparseError when the data and
 * the map disagree in length.
 */
export async function writeSparse(
  fd: number,
  chunks: AsyncIterable<Buffer>,
  spec: SparseSpec,
): Promise<number> {
  const it = chunks[Symbol.asyncIterator]();
  let buf: Buffer = Buffer.alloc(0);
  let consumed = 0;
  // Makes buf non-empty; false at the end of the data.
  const fill = async (): Promise<boolean> => {
    while (buf.length === 0) {
      const next = await it.next();
      if (next.done) {
        return false;
      }
      buf = next.value;
    }
    return true;
  };
  const take = (n: number): Buffer => {
    const part = buf.subarray(0, n);
    buf = buf.subarray(n);
    consumed += part.length;
    return part;
  };

  let segments = spec.segments;
  if (segments === undefined) {
    // PAX 1.0: "count\n" then "offset\nlength\n" per segment.
    const line = async (): Promise<number> => {
      let text = '';
      for (;;) {
        if (consumed > maxMapBytes) {
          throw new BadSparseError('the sparse map is larger than 1 MiB');
        }
        if (!(await fill())) {
          throw new BadSparseError('the data ends inside the sparse map');
        }
        const nl = buf.indexOf(0x0a);
        const part = take(nl < 0 ? buf.length : nl + 1);
        text += part.toString('latin1');
        if (nl >= 0) {
          return number(text.slice(0, -1), 'sparse map entry');
        }
      }
    };
    const count = await line();
    const numbers: number[] = [];
    for (let i = 0; i < 2 * count; i++) {
      numbers.push(await line());
    }
    segments = checked({ segments: pairs(numbers), realSize: spec.realSize }).segments;
    let pad = (512 - (consumed % 512)) % 512;
    while (pad > 0) {
      if (!(await fill())) {
        throw new BadSparseError('the data ends inside the sparse map');
      }
      pad -= take(pad).length;
    }
  }

  let written = 0;
  for (const [offset, length] of segments) {
    let done = 0;
    while (done < length) {
      if (!(await fill())) {
        throw new BadSparseError('the data is shorter than the sparse map says');
      }
      const part = take(length - done);
      let off = 0;
      while (off < part.length) {
        off += fs.writeSync(fd, part, off, part.length - off, offset + done + off);
      }
      done += part.length;
    }
    written += length;
  }
  if (buf.length > 0 || (await fill())) {
    throw new BadSparseError('the data is longer than the sparse map says');
  }
  fs.ftruncateSync(fd, spec.realSize);
  return written;
}
