import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { buildArgs, buildEnv, parseEnvFile } from '../../src/runtime/spec.js';
import { resolveUser } from '../../src/runtime/user.js';

describe('buildArgs', () => {
  const cases: [string, { Entrypoint?: string[]; Cmd?: string[] }, string | undefined, string[], string[]][] = [
    ['cmd alone', { Cmd: ['sh'] }, undefined, [], ['sh']],
    ['entrypoint plus cmd', { Entrypoint: ['/bin/sh', '-c'], Cmd: ['echo hi'] }, undefined, [], ['/bin/sh', '-c', 'echo hi']],
    ['args replace cmd, keep entrypoint', { Entrypoint: ['/bin/sh', '-c'], Cmd: ['echo hi'] }, undefined, ['date'], ['/bin/sh', '-c', 'date']],
    ['--entrypoint drops the image cmd', { Entrypoint: ['a'], Cmd: ['b'] }, 'x', [], ['x']],
    ['--entrypoint with args', { Entrypoint: ['a'], Cmd: ['b'] }, 'x', ['y'], ['x', 'y']],
    ['--entrypoint "" clears it', { Entrypoint: ['a'], Cmd: ['b'] }, '', ['y'], ['y']],
  ];
  for (const [name, config, ep, args, want] of cases) {
    test(name, () => assert.deepEqual(buildArgs(config, ep, args), want));
  }
  test('refuses an empty command', () => assert.throws(() => buildArgs({}, undefined, []), /no command specified/));
});

describe('buildEnv', () => {
  test('applies overrides by key, copies host values for bare keys, and adds the defaults', () => {
    const env = buildEnv({
      image: ['PATH=/bin', 'A=1', 'B=2'],
      overrides: ['A=x', 'C', 'D', 'E=has=equals'],
      host: { C: 'from-host' },
      hostname: 'h1',
      home: '/root',
      tty: true,
    });
    assert.deepEqual(env, ['PATH=/bin', 'A=x', 'B=2', 'C=from-host', 'E=has=equals', 'HOSTNAME=h1', 'HOME=/root', 'TERM=xterm']);
  });
  test('sets the default PATH when the image has none', () => {
    const env = buildEnv({ image: [], overrides: [], host: {}, hostname: 'h', home: '/', tty: false });
    assert.equal(env[0], 'PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin');
    assert.ok(!env.some((e) => e.startsWith('TERM=')));
  });
});

describe('parseEnvFile', () => {
  test('reads KEY=VALUE and KEY lines, skipping comments and blanks, values literal', () => {
    assert.deepEqual(parseEnvFile('# c\n\nA=1\n  B="two words"\nC\r\n', 'f'), ['A=1', 'B="two words"', 'C']);
  });
  test('refuses a variable name with spaces', () => assert.throws(() => parseEnvFile('BAD KEY=1\n', 'f'), /line 1/));
});

describe('resolveUser', () => {
  const files: Record<string, string> = {
    '/etc/passwd': 'root:x:0:0:root:/root:/bin/sh\napp:x:1000:1000::/home/app:/bin/sh\n',
    '/etc/group': 'root:x:0:\napp:x:1000:\nextra:x:2000:app\nwheel:x:10:app,root\n',
  };
  const read = async (p: string) => files[p];
  const cases: [string, { uid: number; gid: number; groups: number[]; home: string }][] = [
    ['', { uid: 0, gid: 0, groups: [10], home: '/root' }],
    ['app', { uid: 1000, gid: 1000, groups: [2000, 10], home: '/home/app' }],
    ['1000', { uid: 1000, gid: 1000, groups: [2000, 10], home: '/home/app' }],
    ['app:extra', { uid: 1000, gid: 2000, groups: [10], home: '/home/app' }],
    ['4242', { uid: 4242, gid: 0, groups: [], home: '/' }],
    ['4242:7', { uid: 4242, gid: 7, groups: [], home: '/' }],
  ];
  for (const [spec, want] of cases) {
    test(`resolves ${JSON.stringify(spec)}`, async () => assert.deepEqual(await resolveUser(spec, read), want));
  }
  test('refuses an unknown name', async () => {
    await assert.rejects(resolveUser('nobody', read), /no matching entries in passwd file/);
    await assert.rejects(resolveUser('app:nogroup', read), /no matching entries in group file/);
  });
});
