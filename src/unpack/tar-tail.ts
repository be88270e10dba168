/**
 * Tolerance for tars that stop right after their last entry.
 *
 * Some image tools (umoci 0.4.7 among them) write layer tars that end with
 * the last file's data: no padding to the 512-byte block, no end-of-archive
 * blocks. Go's archive/tar, and so Docker and podman, read such a tar as
 * complete, and its bytes are what the image's diffID was computed over.
 * This stream walks the tar's block structure (headers and data sizes only)
 * and, when the input ends exactly after an entry's data, supplies the
 * missing padding and end blocks. A tar cut anywhere else (inside a header
 * or inside file data) is passed on unchanged, so the parser still fails on
 * it.
 */
import { Transform, type TransformCallback } from 'node:stream';

const block = 512;

/** Parses a tar numeric field: octal text, or GNU base-256 when the high bit is set. */
function parseNumeric(field: Buffer): number {
  if ((field[0]! & 0x80) !== 0) {
    let n = field[0]! & 0x7f;
    for (let i = 1; i < field.length; i++) n = n * 256 + field[i]!;
    return n;
  }
  const text = field.toString('latin1').replace(/[\0 ]+$/, '').trim();
  return text === '' ? 0 : parseInt(text, 8);
}

export class TarTailStream extends Transform {
  #header = Buffer.alloc(block);
  #headerFill = 0;
  /** Bytes of entry data (not padding) still to come. */
  #data = 0;
  /** Bytes of padding still to come after the data. */
  #padding = 0;
  #sawEnd = false;
  /** Called when padding had to be supplied; says what was missing. */
  onRepair?: (what: string) => void;

  override _transform(chunk: Buffer, _enc: BufferEncoding, done: TransformCallback): void {
    let i = 0;
    while (i < chunk.length && !this.#sawEnd) {
      if (this.#data > 0) {
        const n = Math.min(this.#data, chunk.length - i);
        this.#data -= n;
        i += n;
      } else if (this.#padding > 0) {
        const n = Math.min(this.#padding, chunk.length - i);
        this.#padding -= n;
        i += n;
      } else {
        const n = Math.min(block - this.#headerFill, chunk.length - i);
        chunk.copy(this.#header, this.#headerFill, i, i + n);
        this.#headerFill += n;
        i += n;
        if (this.#headerFill === block) {
          this.#headerFill = 0;
          if (this.#header.every((b) => b === 0)) {
            // The first end-of-archive block: the tar says it is complete.
            this.#sawEnd = true;
          } else {
            const size = parseNumeric(this.#header.subarray(124, 136));
            this.#data = size;
            this.#padding = (block - (size % block)) % block;
          }
        }
      }
    }
    done(null, chunk);
  }

  override _flush(done: TransformCallback): void {
    if (!this.#sawEnd && this.#data === 0 && this.#headerFill === 0) {
      if (this.#padding > 0) this.onRepair?.('the last entry\'s padding and the end-of-archive blocks');
      else this.onRepair?.('the end-of-archive blocks');
      this.push(Buffer.alloc(this.#padding + 2 * block));
    }
    done();
  }
}
