import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { MinidockError } from '../../src/errors.js';
import { parseImageConfig } from '../../src/image/index.js';

const diffID = `sha256:${'a'.repeat(64)}`;

function config(cc: unknown): Buffer {
  return Buffer.from(JSON.stringify({ architecture: 'amd64', os: 'linux', rootfs: { type: 'layers', diff_ids: [diffID] }, config: cc }));
}

describe('parseImageConfig', () => {
  test('accepts the execution fields as the image-spec types them', () => {
    const cc = { User: '1000:1000', Env: ['PATH=/bin', 'EMPTY='], Entrypoint: null, Cmd: ['sh', '-c', 'echo hi'], WorkingDir: '/w' };
    assert.deepEqual(parseImageConfig(config(cc)).config, cc);
    assert.equal(parseImageConfig(config(undefined)).config, undefined);
  });

  const bad: [string, unknown, string][] = [
    ['Env as a string', { Env: 'PATH=/bin' }, 'config.Env is not an array of strings'],
    ['an Env entry that is a number', { Env: [1] }, 'config.Env[0] is not a string'],
    ['an Env entry without a value', { Env: ['PATH=/bin', 'HOME'] }, 'config.Env[1] is not KEY=value'],
    ['User as a number', { User: 1000 }, 'config.User is not a string'],
    ['Cmd as a string', { Cmd: 'echo hi' }, 'config.Cmd is not an array of strings'],
    ['Entrypoint as an object', { Entrypoint: { sh: 1 } }, 'config.Entrypoint is not an array of strings'],
    ['a NUL byte in Cmd', { Cmd: ['echo', 'a\0b'] }, 'config.Cmd[1] holds a NUL byte'],
    ['a NUL byte in Entrypoint', { Entrypoint: ['/bin/\0sh'] }, 'config.Entrypoint[0] holds a NUL byte'],
    ['a NUL byte in WorkingDir', { WorkingDir: '/w\0x' }, 'config.WorkingDir holds a NUL byte'],
    ['a NUL byte in Env', { Env: ['A=\0'] }, 'config.Env[0] holds a NUL byte'],
    ['config as an array', [], 'config is not an object'],
  ];
  for (const [name, cc, message] of bad) {
    test(`refuses ${name} with one line`, () => {
      assert.throws(() => parseImageConfig(config(cc)), (err: Error) => {
        assert.ok(err instanceof MinidockError);
        assert.equal(err.message, `parse image config: ${message}`);
        return true;
      });
    });
  }
});
