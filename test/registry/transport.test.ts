import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { parseRetryAfter, redactUrl } from '../../src/registry/transport.js';

describe('redactUrl', () => {
  const cases: { name: string; url: string; want: string }[] = [
    { name: 'leaves a plain URL alone', url: 'http://127.0.0.1:5000/v2/x/manifests/latest', want: 'http://127.0.0.1:5000/v2/x/manifests/latest' },
    { name: 'redacts userinfo', url: 'https://alice:s3cret@127.0.0.1/v2/', want: 'https://REDACTED:REDACTED@127.0.0.1/v2/' },
    {
      name: 'redacts signature-like query values and keeps the rest',
      url: 'http://127.0.0.2/b?X-Amz-Signature=abc&X-Amz-Credential=k&X-Amz-Expires=60',
      want: 'http://127.0.0.2/b?X-Amz-Signature=REDACTED&X-Amz-Credential=REDACTED&X-Amz-Expires=60',
    },
    { name: 'redacts a token parameter', url: 'http://127.0.0.1/t?access_token=abc&scope=s', want: 'http://127.0.0.1/t?access_token=REDACTED&scope=s' },
  ];
  for (const c of cases) {
    it(c.name, () => assert.equal(redactUrl(c.url), c.want));
  }
});

describe('parseRetryAfter', () => {
  const now = Date.parse('2025-01-01T00:00:00Z');
  it('reads delta-seconds', () => assert.equal(parseRetryAfter('1', now), 1000));
  it('reads an HTTP date', () => assert.equal(parseRetryAfter('Wed, 01 Jan 2025 00:00:03 GMT', now), 3000));
  it('treats a date in the past as no wait', () => assert.equal(parseRetryAfter('Tue, 31 Dec 2024 00:00:00 GMT', now), 0));
  it('ignores junk and absence', () => {
    assert.equal(parseRetryAfter('soon', now), undefined);
    assert.equal(parseRetryAfter(undefined, now), undefined);
  });
});
