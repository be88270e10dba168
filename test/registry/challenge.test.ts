import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { parseChallenges, type Challenge } from '../../src/registry/challenge.js';

describe('parseChallenges', () => {
  const good: { name: string; header: string; want: Challenge[] }[] = [
    {
      name: 'bearer with a comma inside the quoted scope',
      header: 'Bearer realm="https://auth.example/token",service="registry.example",scope="repository:a/b:pull,push"',
      want: [
        {
          scheme: 'bearer',
          params: {
            realm: 'https://auth.example/token',
            service: 'registry.example',
            scope: 'repository:a/b:pull,push',
          },
        },
      ],
    },
    {
      name: 'case-insensitive scheme and parameter names',
      header: 'BEARER Realm="r",SERVICE="s"',
      want: [{ scheme: 'bearer', params: { realm: 'r', service: 's' } }],
    },
    {
      name: 'spaces around "=" and after commas, token values',
      header: 'Bearer realm = "r" ,  service=reg.example',
      want: [{ scheme: 'bearer', params: { realm: 'r', service: 'reg.example' } }],
    },
    {
      name: 'backslash escapes in quoted strings',
      header: String.raw`Basic realm="a \"quoted\" \\ realm"`,
      want: [{ scheme: 'basic', params: { realm: 'a "quoted" \\ realm' } }],
    },
    {
      name: 'empty quoted value',
      header: 'Bearer realm="",service="s"',
      want: [{ scheme: 'bearer', params: { realm: '', service: 's' } }],
    },
    {
      name: 'two challenges in one header',
      header: 'Basic realm="registry", Bearer realm="https://auth.example/token",service="x"',
      want: [
        { scheme: 'basic', params: { realm: 'registry' } },
        { scheme: 'bearer', params: { realm: 'https://auth.example/token', service: 'x' } },
      ],
    },
    {
      name: 'scheme with no parameters, then another',
      header: 'Negotiate, Basic realm="r"',
      want: [
        { scheme: 'negotiate', params: {} },
        { scheme: 'basic', params: { realm: 'r' } },
      ],
    },
    {
      name: 'token68',
      header: 'Negotiate dG9rZW4=, Basic realm="r"',
      want: [
        { scheme: 'negotiate', params: {}, token68: 'dG9rZW4=' },
        { scheme: 'basic', params: { realm: 'r' } },
      ],
    },
    {
      name: 'empty list elements',
      header: ', Bearer realm="r",, service="s" ,',
      want: [{ scheme: 'bearer', params: { realm: 'r', service: 's' } }],
    },
    {
      name: '"__proto__" is an ordinary parameter',
      header: 'Bearer __proto__="x"',
      want: [{ scheme: 'bearer', params: Object.fromEntries([['__proto__', 'x']]) }],
    },
  ];
  for (const c of good) {
    it(`parses ${c.name}`, () => {
      assert.deepEqual(parseChallenges(c.header), c.want);
    });
  }

  const bad: { name: string; header: string; why: RegExp }[] = [
    { name: 'an empty header', header: '   ', why: /empty header/ },
    { name: 'an unterminated quoted string', header: 'Bearer realm="https://a', why: /unterminated/ },
    { name: 'a parameter with no value', header: 'Bearer service="s",realm=', why: /no value/ },
    { name: 'a parameter before any scheme', header: 'realm="r"', why: /before any scheme/ },
    { name: 'a repeated parameter', header: 'Bearer realm="a",Realm="b"', why: /given twice/ },
    { name: 'junk after a quoted value', header: 'Bearer realm="a"b', why: /unexpected "b"/ },
    { name: 'a missing comma between parameters', header: 'Bearer realm="a" service="b"', why: /unexpected "s"/ },
    { name: 'a control character in a quoted value', header: 'Bearer realm="a\u0001b"', why: /control character/ },
    { name: 'a scheme where a parameter must be', header: 'Basic Bearer realm="r"', why: /expected a parameter/ },
    { name: 'a parameter after a token68', header: 'Negotiate abc=, realm="r"', why: /after a token68/ },
    { name: 'a stray quote', header: 'Bearer "r"', why: /unexpected "\\""/ },
  ];
  for (const c of bad) {
    it(`rejects ${c.name}`, () => {
      assert.throws(
        () => parseChallenges(c.header),
        (err: Error & { code?: string }) => {
          assert.equal(err.code, 'ERR_BAD_CHALLENGE');
          assert.match(err.message, /^parse WWW-Authenticate header: /);
          assert.match(err.message, c.why);
          return true;
        },
      );
    });
  }
});
