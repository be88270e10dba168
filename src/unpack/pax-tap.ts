/**
 * A pass-through stream, placed in front of tar-stream's extractor, that
 * keeps the raw bytes of each entry's PAX extended header.
 *
 * tar-stream decodes PAX records as UTF-8 strings, which turns any byte
 * sequence that is not valid UTF-8 into U+FFFD. Xattr values (SCHILY.xattr.*)
 * are binary: security.capability, for one, is a little-endian struct full
 * of bytes above 0x7f. So we follow the tar framing ourselves, only far
 * enough to copy out PAX header data, and pair it with the entry tar-stream
 * emits by the entry's data offset (tar-stream's header.byteOffset).
 *
 * The framing must step exactly as tar-stream does (which sizes it skips,
 * how a PAX "size" overrides the header's), or the offsets disagree;
 * takeEntry then throws instead of pairing the wrong records.
 */
import { Transform, type TransformCallback } from 'node:stream';
import { MinidockError } from '../errors.js';

// tar-stream refuses longer extended headers; so do we.
const maxMetaSize = 4 * 1024 * 1024;

const typePax = 0x78; // 'x'
const typeOldSparse = 0x53; // 'S'
const maxExtBlocks = 2048;
const typeGlobal = 0x67; // 'g'
const metaTypes = new Set([typePax, typeGlobal, 0x4c /* L */, 0x4b /* K */, 0x4e /* N */]);

/** What the tap saw for one entry. */
export interface TappedEntry {
  /** Stream offset of the entry's data (just after its header block). */
  dataOffset: number;
  /** The header's typeflag character, such as "0" or "S". */
  typeflag: string;
  /** Raw records of the entry's own PAX header, if it had one. */
  pax?: Buffer;
  /** Raw records of the last global PAX header before the entry. */
  globalPax?: Buffer;
  /** For an old GNU sparse entry (typeflag "S"): its map and real size. */
  sparse?: SparseMap;
}

/**
 * Where a sparse file's data goes: segments of [offset, length] in file
 * order, the entry's data being their bytes one after the other; the
 * file is realSize bytes long, holes between the segments.
 */
export interface SparseMap {
  segments: Array<[offset: number, length: number]>;
  realSize: number;
}

/** One "length key=value\n" record, with the value left as bytes. */
export interface PaxRecord {
  key: string;
  value: Buffer;
}

/**
 * Parses PAX extended header data into records, keeping values byte-exact.
 * Stops at the first malformed record, as tar-stream does.
 */
export function parsePaxRecords(buf: Buffer): PaxRecord[] {
  const records: PaxRecord[] = [];
  let pos = 0;
  while (pos < buf.length) {
    const space = buf.indexOf(0x20, pos);
    if (space < 0) {
      break;
    }
    const len = Number.parseInt(buf.toString('latin1', pos, space), 10);
    if (!(len > 0) || pos + len > buf.length) {
      break;
    }

    const record = buf.subarray(space + 1, pos + len - 1);
    const eq = record.indexOf(0x3d);
    if (eq < 0) {
      break;
    }
    records.push({ key: record.toString('utf8', 0, eq), value: record.subarray(eq + 1) });
    pos += len;
  }
  return records;
}

function paxSize(raw: Buffer | undefined): number | undefined {
  if (raw === undefined) {
    return undefined;
  }
  let size: number | undefined;
  for (const r of parsePaxRecords(raw)) {
    if (r.key === 'size' && r.value.length > 0) {
      size = Number.parseInt(r.value.toString('latin1'), 10);
    }
  }
  return size;
}

// Numeric header field: octal text, or base-256 when the high bit is set.
function headerNumber(block: Buffer, offset: number, length: number): number {
  const field = block.subarray(offset, offset + length);
  if (field[0] & 0x80) {
    let n = 0;
    for (let i = 1; i < field.length; i++) {
      n = n * 256 + field[i];
    }
    return field[0] === 0xff ? -n - 1 : n;
  }
  const text = field.toString('latin1').replace(/\0.*$/s, '').trim();
  return text === '' ? 0 : Number.parseInt(text, 8);
}

function isZeroBlock(block: Buffer): boolean {
  // tar-stream treats a header whose checksum sums like all zeros as null.
  let sum = 8 * 32;
  for (let i = 0; i < 148; i++) sum += block[i];
  for (let i = 156; i < 512; i++) sum += block[i];
  return sum === 8 * 32;
}

const padded = (n: number) => Math.ceil(n / 512) * 512;

// Reads up to count old GNU sparse entries (12-byte offset, 12-byte
// length) from block at offset; an empty offset field ends them.
function readSparseEntries(
  block: Buffer,
  offset: number,
  count: number,
  into: Array<[number, number]>,
): void {
  for (let i = 0; i < count; i++) {
    const at = offset + i * 24;
    if (block[at] === 0) {
      return;
    }
    into.push([headerNumber(block, at, 12), headerNumber(block, at + 12, 12)]);
  }
}

/**
 * The tap. Pipe the uncompressed tar through it into tar-stream's
 * extractor, and call takeEntry(header.byteOffset) on each 'entry'.
 */
export class PaxTap extends Transform {
  #offset = 0; // bytes seen so far
  #removed = 0; // bytes of them not passed on (sparse extension blocks)
  // An old GNU sparse entry whose extension blocks are being read.
  #ext?: { entry: TappedEntry; dataSize: number; blocks: number };
  #extBlock = Buffer.alloc(512);
  #extFill = 0;
  #header = Buffer.alloc(512);
  #headerFill = 0;
  #skip = 0; // data bytes still to pass without looking
  #meta?: { type: number; size: number; chunks: Buffer[]; have: number };
  #pax?: Buffer;
  #globalPax?: Buffer;
  #queue: TappedEntry[] = [];
  #lost = false; // framing failed; tar-stream will report the error
  #zeroBlocks = 0; // zero header blocks in a row
  #ended = false; // past the two end-of-archive blocks

  /**
   * What followed the end-of-archive blocks: how many bytes, and whether
   * any was not zero (zero padding to a record size is normal). Those
   * bytes are not passed on to the parser.
   */
  readonly trailing = { bytes: 0, nonZero: false };

  /**
   * Returns what the tap saw for the entry whose data starts at
   * dataOffset, dropping earlier records. Throws if the tap's framing and
   * tar-stream's disagree.
   */
  takeEntry(dataOffset: number): TappedEntry {
    while (this.#queue.length > 0 && this.#queue[0].dataOffset < dataOffset) {
      this.#queue.shift();
    }
    const entry = this.#queue.shift();
    if (entry === undefined || entry.dataOffset !== dataOffset) {
      throw new MinidockError(
        'ERR_INTERNAL',
        `[internal error] read tar headers: lost step with the tar parser at byte ${dataOffset}`,
      );
    }
    return entry;
  }

  override _transform(chunk: Buffer, _encoding: BufferEncoding, done: TransformCallback): void {
    const out: Buffer[] = [];
    let end = chunk.length;
    try {
      if (this.#ended) {
        end = 0;
      } else if (this.#lost) {
        out.push(chunk);
      } else {
        end = this.#scan(chunk, out);
      }
    } catch (err) {
      done(err as Error);
      return;
    }
    if (end < chunk.length) {
      const rest = chunk.subarray(end);
      this.trailing.bytes += rest.length;
      this.trailing.nonZero ||= rest.some((b) => b !== 0);
    }
    this.#offset += chunk.length;
    for (const piece of out) {
      this.push(piece);
    }
    done();
  }

  /**
   * Follows the framing through chunk, adding to out what the parser is
   * to see of it; returns where the archive ended in it.
   */
  #scan(chunk: Buffer, out: Buffer[]): number {
    let pos = 0;
    let from = 0; // start of the bytes to pass on
    while (pos < chunk.length && !this.#ended) {
      // Extension blocks of an old GNU sparse header: tar-stream does not
      // know them, so they are kept from it, and the entry's data follows
      // its header as tar-stream expects.
      if (this.#ext !== undefined) {
        if (from < pos) {
          out.push(chunk.subarray(from, pos));
        }
        const n = Math.min(512 - this.#extFill, chunk.length - pos);
        chunk.copy(this.#extBlock, this.#extFill, pos, pos + n);
        this.#extFill += n;
        this.#removed += n;
        pos += n;
        from = pos;
        if (this.#extFill === 512) {
          this.#extFill = 0;
          this.#onExtBlock(this.#ext);
        }
        continue;
      }

      if (this.#skip > 0) {
        const n = Math.min(this.#skip, chunk.length - pos);
        this.#skip -= n;
        pos += n;
        continue;
      }

      const meta = this.#meta;
      if (meta !== undefined) {
        const n = Math.min(meta.size - meta.have, chunk.length - pos);
        meta.chunks.push(Buffer.from(chunk.subarray(pos, pos + n)));
        meta.have += n;
        pos += n;
        if (meta.have === meta.size) {
          this.#endMeta(meta.type, Buffer.concat(meta.chunks));
          this.#meta = undefined;
          this.#skip = padded(meta.size) - meta.size;
        }
        continue;
      }

      const n = Math.min(512 - this.#headerFill, chunk.length - pos);
      chunk.copy(this.#header, this.#headerFill, pos, pos + n);
      this.#headerFill += n;
      pos += n;
      if (this.#headerFill === 512) {
        this.#headerFill = 0;
        // In the parser's terms: what it has seen so far.
        this.#onHeader(this.#offset + pos - 512 - this.#removed);
      }
    }
    if (from < pos) {
      out.push(chunk.subarray(from, pos));
    }
    return pos;
  }

  #onExtBlock(ext: { entry: TappedEntry; dataSize: number; blocks: number }): void {
    const block = this.#extBlock;
    // As for PAX 1.0 maps (see sparse.ts): at most 1 MiB of map.
    if (++ext.blocks > maxExtBlocks) {
      const why = 'read layer tar: a GNU sparse map larger than 1 MiB';
      throw new MinidockError('ERR_BAD_LAYER', why);
    }
    // 21 entries of 24 bytes, then the "isextended" flag.
    readSparseEntries(block, 0, 21, ext.entry.sparse!.segments);
    if (block[504] === 0) {
      this.#ext = undefined;
      this.#skip = padded(ext.dataSize);
    }
  }

  #onHeader(start: number): void {
    const block = this.#header;
    // Two zero blocks end the archive. One alone may end it too (when the
    // input stops there), but a header after one is refused, as Go's
    // archive/tar refuses it: Docker would stop at that block and never
    // see the entries after it, and minidock must not show them either.
    if (isZeroBlock(block)) {
      this.#zeroBlocks++;
      this.#ended = this.#zeroBlocks === 2;
      return;
    }
    if (this.#zeroBlocks > 0) {
      throw new MinidockError(
        'ERR_BAD_LAYER',
        `read layer tar: a header follows a lone zero block at byte ${start - 512}`,
      );
    }

    const type = block[156];
    const size = headerNumber(block, 124, 12);
    if (!(size >= 0)) {
      this.#lost = true;
      return;
    }

    if (metaTypes.has(type)) {
      if (size > maxMetaSize) {
        this.#lost = true;
        return;
      }
      if (type === typePax || type === typeGlobal) {
        if (size === 0) {
          this.#endMeta(type, Buffer.alloc(0));
        } else {
          this.#meta = { type, size, chunks: [], have: 0 };
        }
      } else {
        this.#skip = padded(size);
      }
      return;
    }

    // A real entry. tar-stream lets a PAX size override the header's only
    // when the entry has its own PAX header (merged over the global one),
    // and never reads data for a directory.
    const pax = this.#pax;
    this.#pax = undefined;
    const name = block.subarray(0, 100);
    const nul = name.indexOf(0);
    const last = nul < 0 ? name[99] : nul > 0 ? name[nul - 1] : 0;
    const isDir = type === 0x35 || ((type === 0 || type === 0x30) && last === 0x2f);

    let dataSize = size;
    if (pax !== undefined) {
      dataSize = paxSize(pax) ?? paxSize(this.#globalPax) ?? size;
    }
    const entry: TappedEntry = {
      dataOffset: start + 512,
      typeflag: type === 0 ? '0' : String.fromCharCode(type),
      pax,
      globalPax: this.#globalPax,
    };
    this.#queue.push(entry);
    this.#skip = isDir ? 0 : padded(dataSize);

    // Old GNU sparse: 4 map entries in the header, the real size, and a
    // flag saying whether extension blocks with more entries follow.
    if (type === typeOldSparse) {
      entry.sparse = { segments: [], realSize: headerNumber(block, 483, 12) };
      readSparseEntries(block, 386, 4, entry.sparse.segments);
      if (block[482] !== 0) {
        this.#ext = { entry, dataSize, blocks: 0 };
        this.#skip = 0;
      }
    }
  }

  #endMeta(type: number, data: Buffer): void {
    if (type === typePax) {
      this.#pax = data;
    } else {
      this.#globalPax = data;
    }
  }
}
