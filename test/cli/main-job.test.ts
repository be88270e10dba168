/**
 * The main job end to end: the built CLI pulls the fixture images from a real
 * registry (Debian's docker-registry on 127.0.0.1) and runs them in
 * namespaces under cgroup limits.
 */
import assert from 'node:assert/strict';
import { execFileSync, spawn } from 'node:child_process';
import { mkdtemp, open as fsOpen, readdir, readFile, rename, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { cliPath, makeTestRoot, repoRoot, runCli } from '../helpers/cli.js';
import { startFixtureRegistry } from '../helpers/fixture-registry.js';
import { fixtureLayouts } from '../helpers/fixtures.js';
import { runCliOnPty } from '../helpers/pty.js';
import { assertBlobsVerify } from '../helpers/store-check.js';
import { startRegistry, type TestRegistry } from '../helpers/registry.js';

const skip = process.getuid?.() !== 0 ? 'needs root (namespaces, overlay, cgroups)' : false;

describe('minidock pull and run', { skip }, () => {
  let registry: TestRegistry;
  let root: string;
  let busybox: string;
  let layered: string;
  let multiarch: string;
  const cli = (args: string[], input?: string) => runCli(args, { root, input });

  before(async () => {
    ({ registry, busybox, layered, multiarch } = await startFixtureRegistry());
    root = makeTestRoot();
  });

  after(async () => {
    await registry?.stop();
    if (root) await rm(root, { recursive: true, force: true });
  });

  test('pulls an image, printing its full reference on stdout', async () => {
    const r = await cli(['pull', busybox]);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout, `${busybox}\n`);
    assert.match(r.stderr, /Pull complete/);
    const digest = /^Digest: (sha256:[0-9a-f]{64})$/m.exec(r.stderr)?.[1];
    assert.ok(digest, r.stderr);
    assert.match(r.stderr, /^Image ID: sha256:[0-9a-f]{64}\nStatus: Downloaded newer image for /m);
    assert.ok((await assertBlobsVerify(root)) >= 3, 'manifest, config and layer are stored');

    // -q: the resolved digest on stdout, and nothing else anywhere.
    const quiet = await cli(['pull', '-q', busybox]);
    assert.equal(quiet.code, 0, quiet.stderr);
    assert.equal(quiet.stdout, `${digest}\n`);
    assert.equal(quiet.stderr, '');

    const again = await cli(['pull', busybox]);
    assert.equal(again.code, 0, again.stderr);
    assert.match(again.stderr, /Already exists/);
    assert.match(again.stderr, /Image is up to date/);
  });

  test('the hostname is the short container id unless --hostname', async () => {
    const r = await cli(['run', '--rm', busybox, 'hostname']);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /^[0-9a-f]{12}\n$/);
    const named = await cli(['run', '--rm', '--hostname', 'box1', busybox, 'hostname']);
    assert.equal(named.stdout, 'box1\n');
  });

  test('started by its #! line, Node skips NODE_EXTRA_CA_CERTS and the container still gets it', async () => {
    const file = join(root, 'no-such-ca.pem');
    const line = ['run', '--rm', '-e', 'NODE_EXTRA_CA_CERTS', busybox, 'sh', '-c', 'echo "$NODE_EXTRA_CA_CERTS"'];
    const env = { NODE_EXTRA_CA_CERTS: file };
    // Node warns at start-up when it cannot load the file: it does so
    // under plain `node`, and never tried through the launcher.
    for (const direct of [false, true]) {
      const r = await runCli(line, { root, env, direct });
      assert.equal(r.code, 0, r.stderr);
      assert.equal(r.stdout, `${file}\n`);
      assert.equal(/Ignoring extra certs/.test(r.stderr), !direct, r.stderr);
    }
  });

  test('/etc/hostname and /etc/hosts name the container', async () => {
    const r = await cli(['run', '--rm', '--hostname', 'box2', busybox, 'sh', '-c', 'cat /etc/hostname; grep -c box2 /etc/hosts; stat -c %a /etc']);
    assert.equal(r.code, 0, r.stderr);
    assert.deepEqual(r.stdout.trim().split('\n'), ['box2', '1', '755']);
  });

  test('a missing --env-file is minidock\'s own error, on one line', async () => {
    const r = await cli(['run', '--rm', '--env-file', '/nonexistent/env', busybox, 'true']);
    assert.equal(r.code, 125);
    assert.match(r.stderr, /^minidock: read env file "\/nonexistent\/env": .*no such file/i);
    assert.equal(r.stderr.trim().split('\n').length, 1, r.stderr);
  });

  test('the command is PID 1 and sees only the container\'s processes', async () => {
    // The trailing `true` keeps the shell from exec'ing ps in its place.
    const r = await cli(['run', '--rm', busybox, 'sh', '-c', 'echo $$; ps -o pid,comm; true']);
    assert.equal(r.code, 0, r.stderr);
    const [pid, header, ...procs] = r.stdout.trim().split('\n');
    assert.equal(pid, '1');
    assert.match(header!, /PID/);
    const listed = procs.map((l) => l.trim().split(/\s+/));
    assert.deepEqual(listed.map(([p]) => p), ['1', listed[1]?.[0]]);
    assert.deepEqual(listed.map(([, c]) => c), ['sh', 'ps']);
  });

  test('the host\'s files and network are not visible', async () => {
    const marker = join('/tmp', `minidock-host-marker-${process.pid}`);
    await writeFile(marker, 'host');
    try {
      const r = await cli(['run', '--rm', busybox, 'sh', '-c', `ls ${marker} 2>&1; ls /sys/class/net; cat /proc/1/cmdline | tr '\\0' ' '`]);
      assert.equal(r.code, 0, r.stderr);
      assert.match(r.stdout, /No such file or directory/);
      const lines = r.stdout.trim().split('\n');
      assert.equal(lines[1], 'lo');
      assert.equal(lines[2], 'sh -c ' + `ls ${marker} 2>&1; ls /sys/class/net; cat /proc/1/cmdline | tr '\\0' ' '`);
    } finally {
      await rm(marker, { force: true });
    }
  });

  test('a directory deleted by an upper layer is absent, and the hard link shares its inode', async () => {
    const r = await cli([
      'run', '--rm', '--entrypoint', 'sh', layered, '-c',
      'ls -a /data; ls -a /data/new; stat -c "%i %h" /data/hard1 /data/hard2',
    ]);
    assert.equal(r.code, 0, r.stderr);
    const lines = r.stdout.trim().split('\n');
    assert.ok(!r.stdout.includes('old'), `no "old" in ${r.stdout}`);
    assert.ok(!r.stdout.includes('.wh.'), 'no whiteout names are visible');
    assert.ok(lines.includes('keep') && lines.includes('new') && lines.includes('g'), r.stdout);
    const [a, b] = lines.slice(-2).map((l) => l.split(' '));
    assert.equal(a![0], b![0], 'hard1 and hard2 share an inode');
    assert.equal(a![1], '2', 'the inode has two links');
  });

  test('entrypoint and cmd combine, and env, workdir and user come from the image', async () => {
    const dflt = await cli(['run', '--rm', layered]);
    assert.equal(dflt.code, 0, dflt.stderr);
    assert.equal(dflt.stdout, 'hello world\n');

    const r = await cli([
      'run', '--rm', '--entrypoint', 'sh', layered, '-c',
      'pwd; id -u; id -g; id -G; echo "$GREETING|$FIXTURE|$HOME|$HOSTNAME"',
    ]);
    assert.equal(r.code, 0, r.stderr);
    const [pwd, uid, gid, groups, env] = r.stdout.trim().split('\n');
    assert.equal(pwd, '/work', 'WorkingDir is created when missing');
    assert.equal(uid, '1000');
    assert.equal(gid, '1000');
    assert.deepEqual(groups!.split(' ').sort(), ['1000', '2000']);
    assert.match(env!, /^hello world\|busybox\|\/home\/app\|[0-9a-f]{12}$/);
  });

  test('-e, --env-file, -w and -u override the image', async () => {
    const envFile = join(root, 'env.list');
    await writeFile(envFile, '# comment\nFROM_FILE=1\nGREETING=from file\n');
    const r = await runCli(
      [
        'run', '--rm', '--env-file', envFile, '-e', 'GREETING=bye', '-e', 'FROM_HOST', '-e', 'UNSET_ON_HOST',
        '-w', '/tmp/x', '-u', 'root:extra', '--entrypoint', 'sh', layered, '-c',
        'pwd; id -u; id -g; echo "$GREETING|$FROM_FILE|$FROM_HOST|${UNSET_ON_HOST-unset}"',
      ],
      { root, env: { FROM_HOST: 'host value', UNSET_ON_HOST: undefined } },
    );
    assert.equal(r.code, 0, r.stderr);
    assert.deepEqual(r.stdout.trim().split('\n'), ['/tmp/x', '0', '2000', 'bye|1|host value|unset']);
  });

  test('exit statuses: the command\'s own, 127 not found, 126 not executable', async () => {
    const seven = await cli(['run', '--rm', busybox, 'sh', '-c', 'exit 7']);
    assert.equal(seven.code, 7);

    const missing = await cli(['run', '--rm', busybox, 'no-such-command']);
    assert.equal(missing.code, 127);
    assert.equal(missing.stderr.trim().split('\n').length, 1, missing.stderr);
    assert.match(missing.stderr, /^minidock: exec "no-such-command": executable file not found in \$PATH/);

    const notExec = await cli(['run', '--rm', busybox, '/etc/passwd']);
    assert.equal(notExec.code, 126);
    assert.match(notExec.stderr, /permission denied/);

    const signalled = await cli(['run', '--rm', busybox, 'sh', '-c', 'kill -TERM $$; sleep 1; exit 0']);
    // PID 1 ignores signals it has no handler for, so the shell lives on.
    assert.equal(signalled.code, 0);
  });

  test('death of the container\'s init by signal n exits 128+n', async () => {
    // Killed from the host: inside its namespace, init is immune to SIGKILL.
    const name = `killme-${process.pid}`;
    const running = cli(['run', '--name', name, busybox, 'sleep', '30']);
    let pid: number | undefined;
    for (let i = 0; i < 100 && pid === undefined; i++) {
      await new Promise((r) => setTimeout(r, 50));
      for (const id of await readdir(join(root, 'containers'))) {
        const state = JSON.parse(await readFile(join(root, 'containers', id, 'state.json'), 'utf8').catch(() => '{}'));
        if (state.name === name && state.pid) pid = state.pid;
      }
    }
    assert.ok(pid, 'the container recorded its pid');
    process.kill(pid, 'SIGKILL');
    const r = await running;
    assert.equal(r.code, 137);
    assert.match((await cli(['ps', '-a'])).stdout, new RegExp(`Exited \\(137\\).*${name}`));
    assert.equal((await cli(['rm', name])).code, 0);
  });

  test('SIGINT sent to minidock run reaches the container, as with Docker\'s sig-proxy', async () => {
    const script = 'trap "echo got-int; exit 42" INT; echo ready; while :; do sleep 1000 & wait; done';
    const child = spawn(process.execPath, ['--', cliPath, 'run', '--rm', busybox, 'sh', '-c', script], {
      cwd: repoRoot,
      env: { ...process.env, MINIDOCK_ROOT: root },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let out = '';
    let err = '';
    child.stderr.on('data', (d: Buffer) => (err += d.toString()));
    child.stdout.on('data', (d: Buffer) => {
      out += d.toString();
      if (out === 'ready\n') child.kill('SIGINT');
    });
    const code = await new Promise<number | null>((res) => child.once('close', res));
    assert.equal(code, 42, err);
    assert.equal(out, 'ready\ngot-int\n');
  });

  test('environment values are not on any command line another user can read', async () => {
    const secret = `s3cr3t-${process.pid}`;
    const file = join(root, 'secret.env');
    await writeFile(file, `MD_SECRET=${secret}\n`, { mode: 0o600 });
    const child = spawn(process.execPath, ['--', cliPath, 'run', '--rm', '-i', '--env-file', file, busybox, 'sh', '-c', 'echo "ready $MD_SECRET"; read x'], {
      cwd: repoRoot,
      env: { ...process.env, MINIDOCK_ROOT: root },
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    const closed = new Promise<number | null>((res) => child.once('close', res));
    try {
      let out = '';
      await new Promise<void>((res) => {
        child.stdout.on('data', (d: Buffer) => {
          out += d.toString();
          if (out.endsWith('\n')) res();
        });
        child.once('close', () => res());
      });
      assert.equal(out, `ready ${secret}\n`);
      const asNobody = (args: string[]) => execFileSync('setpriv', ['--reuid=65534', '--regid=65534', '--clear-groups', ...args], { encoding: 'utf8' });
      const ps = asNobody(['ps', '-eo', 'args']);
      assert.match(ps, /minidock-exec .*--env-fd/, 'the helper is listed');
      assert.ok(!ps.includes(secret), 'the value is on no command line');
    } finally {
      child.stdin.end('\n');
    }
    assert.equal(await closed, 0);
  });

  test('an environment line too long for execve is one line of error, exit 125', async () => {
    const file = join(root, 'big.env');
    await writeFile(file, `BIG=${'x'.repeat(140 * 1024)}\n`);
    const r = await cli(['run', '--rm', '--env-file', file, busybox, 'true']);
    assert.equal(r.code, 125);
    assert.match(r.stderr, /^minidock: .*environment variable "BIG" takes 143364 bytes; the kernel passes at most 131071/);
    assert.equal(r.stderr.trim().split('\n').length, 1, r.stderr);
    // Just under the limit, it reaches the container whole.
    await writeFile(file, `BIG=${'x'.repeat(131071 - 4)}\n`);
    const ok = await cli(['run', '--rm', '--env-file', file, busybox, 'sh', '-c', 'echo ${#BIG}']);
    assert.equal(ok.code, 0, ok.stderr);
    assert.equal(ok.stdout, `${131071 - 4}\n`);
  });

  test('kill -9 of minidock run takes the container with it; rm then clears its cgroups', async () => {
    const name = `k9-${process.pid}`;
    const child = spawn(process.execPath, ['--', cliPath, 'run', '--name', name, '--pids-limit', '50', busybox, 'sleep', '30'], {
      cwd: repoRoot,
      env: { ...process.env, MINIDOCK_ROOT: root },
      stdio: 'ignore',
    });
    const exited = new Promise((res) => child.on('exit', res));
    let state: { pid?: number; cgroups?: string[]; id?: string } = {};
    for (let i = 0; i < 400 && !state.pid; i++) {
      await new Promise((r) => setTimeout(r, 50));
      for (const id of await readdir(join(root, 'containers'))) {
        const s = JSON.parse(await readFile(join(root, 'containers', id, 'state.json'), 'utf8').catch(() => '{}'));
        if (s.name === name && s.pid) state = s;
      }
    }
    assert.ok(state.pid && state.cgroups && state.cgroups.length > 0, 'the container recorded its pid and cgroups');
    child.kill('SIGKILL');
    await exited;
    let alive = true;
    for (let i = 0; i < 400 && alive; i++) {
      await new Promise((r) => setTimeout(r, 50));
      try {
        process.kill(state.pid!, 0);
        const stat = await readFile(`/proc/${state.pid}/stat`, 'utf8').catch(() => '');
        if (stat.split(') ')[1]?.startsWith('Z')) alive = false;
      } catch {
        alive = false;
      }
    }
    assert.equal(alive, false, 'the container died with minidock');
    const rm = await cli(['rm', name]);
    assert.equal(rm.code, 0, rm.stderr);
    for (const dir of state.cgroups!) {
      assert.equal(await readdir(dir).then(() => 'exists', () => 'gone'), 'gone', dir);
    }
  });

  test('rm -f of a running container kills it; its run exits 137 without a trace', async () => {
    const name = `rmf-${process.pid}`;
    const running = cli(['run', '--name', name, busybox, 'sleep', '30']);
    let removed = false;
    for (let i = 0; i < 100 && !removed; i++) {
      await new Promise((r) => setTimeout(r, 50));
      const ps = await cli(['ps']);
      if (ps.stdout.includes(name)) removed = (await cli(['rm', '-f', name])).code === 0;
    }
    assert.ok(removed, 'rm -f succeeded while the container ran');
    const r = await running;
    assert.equal(r.code, 137, r.stderr);
    assert.doesNotMatch(r.stderr, /internal error|\n\s+at /);
    assert.doesNotMatch((await cli(['ps', '-a'])).stdout, new RegExp(name));
  });

  test('a fork loop stops at --pids-limit', async () => {
    const r = await cli([
      'run', '--rm', '--pids-limit', '20', busybox, 'sh', '-c',
      'hostname; i=0; while [ $i -lt 100 ]; do sleep 30 & i=$((i+1)); done; echo never',
    ]);
    assert.notEqual(r.code, 0);
    assert.ok(!r.stdout.includes('never'), 'the loop could not finish');
    assert.match(r.stderr, /can't fork|Resource temporarily unavailable/);

    // The container's cgroups are gone once it has ended.
    const id = r.stdout.trim().split('\n')[0]!;
    assert.match(id, /^[0-9a-f]{12}$/);
    const leftovers: string[] = [];
    const walk = async (dir: string, depth: number): Promise<void> => {
      if (depth > 6) return;
      for (const e of await readdir(dir, { withFileTypes: true }).catch(() => [])) {
        if (!e.isDirectory()) continue;
        if (e.name.startsWith(id)) leftovers.push(join(dir, e.name));
        else await walk(join(dir, e.name), depth + 1);
      }
    };
    await walk('/sys/fs/cgroup', 0);
    assert.deepEqual(leftovers, []);
  });

  test('--pull never refuses a missing image; --pull always fetches again', async () => {
    const never = await cli(['run', '--rm', '--pull', 'never', `${registry.host}/library/absent:latest`, 'true']);
    assert.equal(never.code, 125);
    assert.match(never.stderr, /^minidock: no such image: /);
    const always = await cli(['run', '--rm', '--pull', 'always', busybox, 'true']);
    assert.equal(always.code, 0, always.stderr);
    assert.match(always.stderr, /Pulling from/);
    assert.doesNotMatch(always.stderr, /Unable to find image/);
  });

  test('an allocation beyond --memory is killed (137) and the host carries on', async () => {
    const r = await cli(['run', '--rm', '-m', '32m', busybox, 'sh', '-c', 'x=$(head -c 100m /dev/zero | tr "\\0" a); echo survived ${#x}']);
    assert.equal(r.code, 137, `stdout ${r.stdout}`);
    assert.doesNotMatch(r.stdout, /survived/);
    const after = await cli(['run', '--rm', busybox, 'true']);
    assert.equal(after.code, 0);
  });

  test('an index resolves to linux/amd64, not the arm64 entry listed first nor the attestation', async () => {
    const r = await cli(['run', '--rm', multiarch, 'sh', '-c', 'echo $FIXTURE']);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout, 'amd64\n');
  });

  test('an interactive shell through a real pseudo-terminal reads a command and exits with its status', async () => {
    const { code, out } = await runCliOnPty(['run', '--rm', busybox, 'sh'], { root, typed: 'echo tty-$((40+2)); tty; exit 3\r' });
    assert.equal(code, 3, out);
    assert.match(out, /tty-42/);
    assert.match(out, /\/dev\/pts\/0/);
  });

  test('a tampered blob is refused and not stored', async () => {
    // A second registry, since blobs are shared by every repository of one.
    const evil = await startRegistry();
    const tamperRoot = makeTestRoot();
    try {
      const layouts = await fixtureLayouts();
      await evil.push(join(layouts, 'busybox'), 'library/busybox', 'latest');
      const blobs = join(evil.dir, 'storage', 'docker', 'registry', 'v2', 'blobs', 'sha256');
      // Flip one byte of the largest blob (the layer), keeping its size.
      let largest = { path: '', size: -1 };
      for (const two of await readdir(blobs)) {
        for (const hex of await readdir(join(blobs, two))) {
          const path = join(blobs, two, hex, 'data');
          const size = (await readFile(path)).length;
          if (size > largest.size) largest = { path, size };
        }
      }
      const bytes = await readFile(largest.path);
      bytes[bytes.length >> 1]! ^= 0xff;
      await writeFile(largest.path, bytes);
      const hex = largest.path.split('/').at(-2)!;

      const r = await runCli(['pull', `${evil.host}/library/busybox:latest`], { root: tamperRoot });
      assert.equal(r.code, 125);
      assert.match(r.stderr, new RegExp(`minidock: .*sha256:${hex}`));
      assert.ok(!(await readdir(join(tamperRoot, 'blobs', 'sha256'))).includes(hex), 'the bad blob is not stored');
      assert.deepEqual(await readdir(join(tamperRoot, 'layers')), [], 'no layer was kept');
      assert.deepEqual((await readdir(join(tamperRoot, 'tmp'))).filter((n) => !n.startsWith('write.')), [], 'no partial files stay');
      assert.doesNotMatch((await runCli(['images'], { root: tamperRoot })).stdout, /busybox/);
    } finally {
      await evil.stop();
      await rm(tamperRoot, { recursive: true, force: true });
    }
  });

  test('without -t the container cannot reach the user\'s terminal through /dev/tty', async () => {
    // Under a real terminal, with -i alone: stdin is the terminal, but the
    // container must not have it as its controlling terminal.
    const probe = 'if echo probe > /dev/tty; then echo REACHED; else echo REFUSED; fi 2>/dev/null';
    const { code, out } = await runCliOnPty(['run', '--rm', '-i', busybox, 'sh', '-c', probe], { root });
    assert.equal(code, 0, out);
    assert.match(out, /REFUSED/);
    assert.doesNotMatch(out, /REACHED/);
  });

  test('an invalid reference exits 125 with one line on stderr, before any I/O', async () => {
    for (const cmd of [['pull', 'Busybox:latest'], ['run', 'bad::ref', 'true']]) {
      const r = await cli(cmd);
      assert.equal(r.code, 125);
      assert.equal(r.stdout, '');
      assert.equal(r.stderr.trim().split('\n').length, 1, r.stderr);
      assert.match(r.stderr, /^minidock: invalid reference format/);
    }
  });

  /**
   * Runs the CLI with the given files (or devices) as its stdio; 'pipe'
   * ends are read back. Resolves with the exit status and what the pipes got.
   */
  async function cliWithStdio(args: string[], stdio: { in?: string; out?: string; err?: string; append?: boolean }) {
    const open = async (path: string | undefined, flags: string) => (path === undefined ? undefined : fsOpen(path, flags));
    const flags = stdio.append ? 'a' : 'w';
    const files = [await open(stdio.in, 'r'), await open(stdio.out, flags), await open(stdio.err, flags)];
    try {
      const child = spawn(process.execPath, ['--', cliPath, ...args], {
        cwd: repoRoot,
        env: { ...process.env, MINIDOCK_ROOT: root },
        stdio: files.map((f) => f?.fd ?? 'pipe'),
      });
      child.stdin?.end();
      let stdout = '';
      let stderr = '';
      child.stdout?.on('data', (d: Buffer) => (stdout += d.toString()));
      child.stderr?.on('data', (d: Buffer) => (stderr += d.toString()));
      const code = await new Promise<number | null>((res) => child.once('close', res));
      return { code, stdout, stderr };
    } finally {
      for (const f of files) await f?.close();
    }
  }

  test('a container cannot write the host file that is its stdin', async () => {
    const ro = join(root, 'stdin-ro');
    await writeFile(ro, 'orig\n', { mode: 0o444 });
    const r = await cliWithStdio(['run', '--rm', '-i', busybox, 'sh', '-c', 'echo PWNED > /proc/self/fd/0; stat -L -c %F /proc/self/fd/0'], { in: ro });
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout, 'fifo\n', 'the container reads its stdin through a pipe');
    assert.equal(await readFile(ro, 'utf8'), 'orig\n');
  });

  test('a container cannot truncate the host file its stdout appends to', async () => {
    const log = join(root, 'stdout-log');
    await writeFile(log, 'a\nb\n', { mode: 0o444 });
    const r = await cliWithStdio(['run', '--rm', busybox, 'sh', '-c', ': > /proc/self/fd/1; echo c; echo d >&2; exit 3'], { out: log, append: true });
    assert.equal(r.code, 3, r.stderr);
    assert.equal(r.stderr, 'd\n');
    assert.equal(await readFile(log, 'utf8'), 'a\nb\nc\n');
  });

  test('a container cannot read the host file its stdout goes to', async () => {
    const log = join(root, 'stdout-secret');
    await writeFile(log, 'SECRET\n');
    // The reopening may be refused (the pipe is root's, 0600); if not, with
    // fd 1 closed nothing writes to what fd 3 reopened and cat ends at once.
    const script = '( exec 3</proc/self/fd/1; exec 1>&-; cat <&3 >&4 ) 4>&2 2>/dev/null; echo done >&2';
    const r = await cliWithStdio(['run', '--rm', '-u', '1000', busybox, 'sh', '-c', script], { out: log, append: true });
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stderr, 'done\n');
    assert.equal(await readFile(log, 'utf8'), 'SECRET\n');
  });

  test('relayed stdio keeps every byte, the order of stdout and stderr in one file, and the exit status', async () => {
    const input = join(root, 'stdin-big');
    const big = Buffer.alloc(1 << 20, 'x');
    await writeFile(input, big);
    const out = join(root, 'stdio-out');
    // Output first, input after: a relay that blocked on the unread stdin
    // would never see the output, and the run would hang.
    const script = 'seq 1 50000; wc -c; echo err1 >&2; echo out2; echo err2 >&2; exit 5';
    const r = await cliWithStdio(['run', '--rm', '-i', busybox, 'sh', '-c', script], { in: input, out, err: out });
    assert.equal(r.code, 5);
    const seq = Array.from({ length: 50000 }, (_, i) => `${i + 1}\n`).join('');
    assert.equal(await readFile(out, 'utf8'), `${seq}${big.length}\nerr1\nout2\nerr2\n`);

    // A device other than /dev/null is relayed too, and /dev/null passes straight.
    const zero = await cliWithStdio(['run', '--rm', '-i', busybox, 'sh', '-c', 'head -c 3 | od -An -tx1; stat -L -c %t:%T /proc/self/fd/2'], { in: '/dev/zero', err: '/dev/null' });
    assert.equal(zero.code, 0, zero.stderr);
    assert.equal(zero.stdout.replace(/ +/g, ' '), ' 00 00 00\n1:3\n');
  });

  test('a relative store root works from any directory; one overlay cannot name is refused in one line', async () => {
    const cwd = await mkdtemp(join(tmpdir(), 'minidock-cwd-'));
    const inCwd = (args: string[], env: Record<string, string>) =>
      new Promise<{ code: number | null; stdout: string; stderr: string }>((res) => {
        const child = spawn(process.execPath, ['--', cliPath, ...args], { cwd, env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
        let stdout = '';
        let stderr = '';
        child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
        child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
        child.once('close', (code) => res({ code, stdout, stderr }));
      });
    try {
      const pulled = await inCwd(['--root', 'relstore', 'pull', '-q', busybox], {});
      assert.equal(pulled.code, 0, pulled.stderr);
      const ran = await inCwd(['--root', 'relstore', 'run', '--rm', busybox, 'echo', 'hi'], {});
      assert.equal(ran.code, 0, ran.stderr);
      assert.equal(ran.stdout, 'hi\n');
      const fromEnv = await inCwd(['run', '--rm', busybox, 'echo', 'env'], { MINIDOCK_ROOT: 'relstore' });
      assert.equal(fromEnv.stdout, 'env\n', fromEnv.stderr);

      await rename(join(cwd, 'relstore'), join(cwd, 'rel,store'));
      const comma = await inCwd(['run', '--rm', busybox, 'true'], { MINIDOCK_ROOT: 'rel,store' });
      assert.equal(comma.code, 125);
      assert.match(comma.stderr, /^minidock: run a container in store ".*\/rel,store": overlay mount options cannot carry its ","\nhint: /);
      assert.equal(comma.stderr.trim().split('\n').length, 2, comma.stderr);
    } finally {
      await rm(cwd, { recursive: true, force: true });
    }
  });

  test('a bad --name, --hostname or --memory is one line of error, exit 125', async () => {
    const cases: [string[], RegExp][] = [
      [['--name', 'a'.repeat(300)], /^minidock: invalid container name "a{129}": only \[a-zA-Z0-9\]\[a-zA-Z0-9_.-\]\+ are allowed, at most 128 characters\n$/],
      [['--name', 'a'], /^minidock: invalid container name "a": /],
      [['--name', '-x'], /^minidock: invalid container name "-x": /],
      [['-h', ''], /^minidock: invalid hostname "": want letters, digits and '-'/],
      [['-h', 'a b'], /^minidock: invalid hostname "a b": /],
      [['-h', '-box'], /^minidock: invalid hostname "-box": /],
      [['-h', 'x'.repeat(65)], /^minidock: invalid hostname "x{65}": /],
      [['-m', '99999999999999999g'], /^minidock: invalid --memory "99999999999999999g": want a size of at least 6m and below 8192t/],
    ];
    for (const [flags, message] of cases) {
      const r = await cli(['run', '--rm', ...flags, busybox, 'true']);
      assert.equal(r.code, 125, `${flags.join(' ')}: ${r.stderr}`);
      assert.match(r.stderr, message);
      assert.equal(r.stderr.trim().split('\n').length, 1, r.stderr);
    }
    // At the limits, they are taken.
    const ok = await cli(['run', '--rm', '--name', 'a'.repeat(128), '-h', `${'b'.repeat(62)}.c`, busybox, 'hostname']);
    assert.equal(ok.code, 0, ok.stderr);
    assert.equal(ok.stdout, `${'b'.repeat(62)}.c\n`);
  });

  test('a container nesting directories past PATH_MAX is diffed with one line of error and removed whole', async () => {
    const deep = `deep-${process.pid}`;
    const nest = 'cd /tmp; i=0; while [ $i -lt 2100 ]; do mkdir d && cd d || exit 1; i=$((i+1)); done';
    const made = await cli(['run', '--name', deep, busybox, 'sh', '-c', nest]);
    assert.notEqual(made.code, 125, made.stderr);
    const id = JSON.parse((await cli(['inspect', '--format', 'json', deep])).stdout).id as string;
    const diff = await cli(['diff', deep]);
    assert.equal(diff.code, 125);
    assert.match(diff.stderr, /^minidock: read ".*": it holds a path longer than the system allows\n$/);
    const rm = await cli(['rm', deep]);
    assert.equal(rm.code, 0, rm.stderr);
    assert.equal((await readdir(join(root, 'containers'))).includes(id), false);
    assert.deepEqual((await readdir(join(root, 'tmp'))).filter((n) => n.startsWith('rm-container')), []);
  });

  test('images, ps -a, rm and rmi manage what the store holds', async () => {
    const run = await cli(['run', '--name', 'keeper', busybox, 'true']);
    assert.equal(run.code, 0, run.stderr);

    const ps = await cli(['ps', '-a']);
    assert.match(ps.stdout, /^CONTAINER ID\s+IMAGE\s+COMMAND\s+CREATED\s+STATUS\s+NAMES\n/);
    assert.match(ps.stdout, /Exited \(0\).*keeper/);

    const images = await cli(['images']);
    assert.match(images.stdout, /^REPOSITORY\s+TAG\s+IMAGE ID\s+CREATED\s+SIZE\n/);
    assert.match(images.stdout, new RegExp(`${registry.host}/library/busybox\\s+latest\\s+[0-9a-f]{12}`));

    const refused = await cli(['rmi', busybox]);
    assert.equal(refused.code, 125);
    assert.match(refused.stderr, /container [0-9a-f]{12} is using its referenced image/);

    const rm = await cli(['rm', 'keeper']);
    assert.equal(rm.code, 0, rm.stderr);
    assert.doesNotMatch((await cli(['ps', '-a'])).stdout, /keeper/);

    // Several names: each failure on its own line, and the status is
    // minidock's own error, as for one name.
    const two = await cli(['rm', 'nosuch1', 'nosuch2']);
    assert.equal(two.code, 125);
    assert.deepEqual(two.stderr.trim().split('\n').map((l) => l.startsWith('minidock: ') && /nosuch[12]/.test(l)), [true, true]);

    const before = (await readdir(join(root, 'layers'))).length;
    const rmi = await cli(['rmi', busybox]);
    assert.equal(rmi.code, 0, rmi.stderr);
    assert.match(rmi.stdout, /Untagged: .*busybox:latest\nDeleted: sha256:/);
    assert.doesNotMatch((await cli(['images'])).stdout, /library\/busybox\s/);
    // The busybox layer is shared with multiarch, so it stays.
    assert.equal((await readdir(join(root, 'layers'))).length, before);
    await assertBlobsVerify(root);

    // An image that has run is found by its short id (its derived-facts
    // cache beside the record must not make the id ambiguous).
    const repositories = JSON.parse(await readFile(join(root, 'repositories.json'), 'utf8')) as Record<string, string>;
    const layeredId = repositories[`${registry.host}/library/layered:latest`]!.slice(7, 19);
    assert.ok((await readdir(join(root, 'images'))).includes(`${repositories[`${registry.host}/library/layered:latest`]!.slice(7)}.cache`));
    const byId = await cli(['run', '--rm', '--pull', 'never', layeredId, 'true']);
    assert.equal(byId.code, 0, byId.stderr);

    // layered's second layer is its own: rmi (by id) frees it and its blob.
    const blobsBefore = (await readdir(join(root, 'blobs', 'sha256'))).length;
    const rmiLayered = await cli(['rmi', layeredId]);
    assert.equal(rmiLayered.code, 0, rmiLayered.stderr);
    assert.ok((await readdir(join(root, 'layers'))).length < before, 'a layer was freed');
    assert.ok((await readdir(join(root, 'blobs', 'sha256'))).length < blobsBefore, 'blobs were freed');
    await assertBlobsVerify(root);
  });
});
