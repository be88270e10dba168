import assert from 'node:assert/strict';
import { Readable } from 'node:stream';
import { describe, it } from 'node:test';
import { extract } from 'tar-stream';
import { PaxTap, parsePaxRecords } from '../../src/unpack/pax-tap.js';
import { makeTar, paxRecord } from '../helpers/make-tar.js';

describe('parsePaxRecords', () => {
  it('keeps values byte-exact, including bytes that are not UTF-8', () => {
    const value = Buffer.from([0xff, 0x00, 0x80, 0x0a, 0x3d]);
    const raw = Buffer.concat([
      paxRecord('SCHILY.xattr.user.x', value),
      paxRecord('path', Buffer.from('a/b')),
    ]);
    const records = parsePaxRecords(raw);

    assert.equal(records.length, 2);
    assert.equal(records[0].key, 'SCHILY.xattr.user.x');
    assert.deepEqual(records[0].value, value);
    assert.equal(records[1].key, 'path');
    assert.equal(records[1].value.toString(), 'a/b');
  });

  it('stops at a malformed record', () => {
    const raw = Buffer.concat([paxRecord('a', Buffer.from('1')), Buffer.from('garbage')]);
    assert.deepEqual(parsePaxRecords(raw).map((r) => r.key), ['a']);
  });
});

describe('PaxTap', () => {
  it("is needed: tar-stream's own PAX values lose bytes that are not UTF-8", async () => {
    // A security.capability value: bytes above 0x7f and NULs.
    const cap = Buffer.from([0x01, 0x00, 0x00, 0x02, 0x00, 0x20, 0x20, 0x80, 0xff, 0x00]);
    const tar = await makeTar([{ name: 'ping', content: 'x', xattrs: { 'security.capability': cap } }]);
    const tap = new PaxTap();
    const ex = extract();
    Readable.from([tar]).pipe(tap).pipe(ex);

    for await (const entry of ex) {
      const pax = entry.header.pax as Record<string, string> | undefined;
      const decoded = pax?.['SCHILY.xattr.security.capability'] ?? '';
      assert.notDeepEqual(Buffer.from(decoded, 'utf8'), cap, 'tar-stream decodes the value as UTF-8');
      assert.match(decoded, /\uFFFD/);
      const h = entry.header as unknown as { byteOffset: number };
      const raw = parsePaxRecords(tap.takeEntry(h.byteOffset).pax!);
      assert.deepEqual(raw[0].value, cap, 'the tap keeps the bytes');
      entry.resume();
    }
  });

  it('pairs each entry with its own raw PAX header, in step with tar-stream', async () => {
    const odd = Buffer.from([0xc3, 0x28, 0xff]);
    const tar = await makeTar([
      { name: 'plain', content: 'x'.repeat(700) },
      { name: 'with-xattr', content: 'y', xattrs: { 'user.odd': odd } },
      { name: 'd/', type: 'directory' },
      { name: `${'n'.repeat(150)}`, content: 'long name' },
      { name: 'last', type: 'symlink', linkname: 'plain', xattrs: { 'user.l': 'v' } },
    ]);

    // Feed the tar in awkward chunk sizes so headers straddle chunks.
    const chunks: Buffer[] = [];
    for (let i = 0; i < tar.length; i += 333) chunks.push(tar.subarray(i, i + 333));
    const tap = new PaxTap();
    const ex = extract();
    Readable.from(chunks).pipe(tap).pipe(ex);

    const seen: Array<[string, string[]]> = [];
    for await (const entry of ex) {
      const h = entry.header as unknown as { name: string; byteOffset: number };
      const t = tap.takeEntry(h.byteOffset);
      const records = t.pax === undefined ? [] : parsePaxRecords(t.pax);
      seen.push([h.name, records.map((r) => `${r.key}=${r.value.toString('hex')}`)]);
      for await (const _ of entry) {
        // drain
      }
    }

    assert.deepEqual(seen, [
      ['plain', []],
      ['with-xattr', [`SCHILY.xattr.user.odd=${odd.toString('hex')}`]],
      ['d/', []],
      ['n'.repeat(150), [`path=${Buffer.from('n'.repeat(150)).toString('hex')}`]],
      ['last', [`SCHILY.xattr.user.l=${Buffer.from('v').toString('hex')}`]],
    ]);
  });
});
