import assert from 'node:assert/strict';
import { execFileSync, spawn } from 'node:child_process';
import { existsSync, readFileSync, readlinkSync, statSync } from 'node:fs';
import { chmod, copyFile, mkdir, mkdtemp, readFile, rm, rmdir, stat, symlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { Readable, Writable } from 'node:stream';
import { after, before, describe, test } from 'node:test';

import { ContainerExecError, RuntimeSetupError } from '../../src/errors.js';
import { execError, executorArgs, executorEnv, executorPath, execute, type ExecSpec } from '../../src/runtime/executor.js';

// A bound on any single container run, so a broken helper fails the test
// instead of hanging it; no assertion depends on time.
const RUN_BOUND = { timeout: 60_000 };

const BUSYBOX = '/bin/busybox';
const APPLETS = [
  'sh', 'ps', 'hostname', 'id', 'cat', 'ls', 'mount', 'sleep', 'true', 'touch', 'test', 'echo', 'env', 'pwd', 'grep',
  'mkdir', 'mknod', 'dmesg', 'unshare', 'wc', 'readlink',
];

// Docker's default capabilities without CAP_MKNOD, by number (linux/capability.h).
const KEPT_CAPS = {
  CHOWN: 0, DAC_OVERRIDE: 1, FOWNER: 3, FSETID: 4, KILL: 5, SETGID: 6, SETUID: 7, SETPCAP: 8,
  NET_BIND_SERVICE: 10, NET_RAW: 13, SYS_CHROOT: 18, AUDIT_WRITE: 29, SETFCAP: 31,
};
const KEPT_MASK = Object.values(KEPT_CAPS)
  .reduce((mask, cap) => mask | (1n << BigInt(cap)), 0n)
  .toString(16)
  .padStart(16, '0');

const MASKED_PATHS = [
  '/proc/asound', '/proc/acpi', '/proc/kcore', '/proc/keys', '/proc/latency_stats', '/proc/timer_list',
  '/proc/timer_stats', '/proc/sched_debug', '/proc/scsi', '/sys/firmware', '/sys/devices/virtual/powercap',
];
const READONLY_PATHS = ['/proc/bus', '/proc/fs', '/proc/irq', '/proc/sys', '/proc/sysrq-trigger'];

function skipReason(): string | false {
  if (process.getuid?.() !== 0) return 'needs root (namespaces, mounts, cgroups)';
  if (!existsSync(executorPath())) return `needs the native executor at ${executorPath()} (run \`npm run build\`)`;
  if (!existsSync(BUSYBOX)) return `needs ${BUSYBOX} (Debian package busybox-static)`;
  if (!readFileSync('/proc/filesystems', 'utf8').includes('\toverlay\n')) return 'needs overlayfs';
  return false;
}

const skip = skipReason();

let base = '';
let counter = 0;

/** One container's writable layer: spec plus a reader for what it wrote. */
async function container(overrides: Partial<ExecSpec> & { args: string[] }) {
  const dir = `c${++counter}`;
  for (const sub of ['upper', 'work', 'merged']) await mkdir(join(base, dir, sub), { recursive: true });
  const spec: ExecSpec = {
    overlay: {
      data: `lowerdir=lower,upperdir=${dir}/upper,workdir=${dir}/work`,
      mountCwd: base,
      rootfs: join(base, dir, 'merged'),
    },
    hostname: `box-${counter}`,
    env: ['PATH=/bin'],
    cwd: '/',
    uid: 0,
    gid: 0,
    groups: [],
    tty: false,
    stdin: false,
    cgroupProcs: [],
    ...overrides,
  };
  const upper = (path: string) => join(base, dir, 'upper', path);
  return { spec, upper, read: (path: string) => readFile(upper(path), 'utf8') };
}

/** Runs the helper directly with piped stdio; returns its records and output. */
function runHelper(spec: ExecSpec, input?: string) {
  const child = spawn(executorPath(), executorArgs(spec), { stdio: ['pipe', 'pipe', 'inherit', 'pipe', 'pipe'] });
  (child.stdio[4] as Writable).end(executorEnv(spec));
  let out = '';
  let log = '';
  child.stdout!.on('data', (d: Buffer) => (out += d.toString()));
  (child.stdio[3] as Readable).on('data', (d: Buffer) => (log += d.toString()));
  if (input !== undefined) child.stdin!.end(input);
  return new Promise<{ code: number | null; out: string; records: Record<string, unknown>[] }>((resolve, reject) => {
    child.once('error', reject);
    child.once('close', (code) => {
      const records = log.split('\n').filter(Boolean).map((l) => JSON.parse(l) as Record<string, unknown>);
      resolve({ code, out, records });
    });
  });
}

function shellQuote(s: string): string {
  return `'${s.replaceAll("'", `'\\''`)}'`;
}

describe('execute', { skip }, () => {
  before(async () => {
    base = await mkdtemp('/tmp/minidock-exec-test-');
    const lower = join(base, 'lower');
    await mkdir(join(lower, 'bin'), { recursive: true });
    await mkdir(join(lower, 'etc'));
    await mkdir(join(lower, 'tmp'));
    await chmod(join(lower, 'tmp'), 0o1777);
    await copyFile(BUSYBOX, join(lower, 'bin/busybox'));
    await chmod(join(lower, 'bin/busybox'), 0o755);
    for (const applet of APPLETS) await symlink('busybox', join(lower, 'bin', applet));
    await writeFile(join(lower, 'etc/passwd'), 'root:x:0:0:root:/root:/bin/sh\nuser:x:1000:1000::/home/user:/bin/sh\n');
    await writeFile(join(lower, 'etc/group'), 'root:x:0:\nuser:x:1000:\n');
    // A device node as an image layer could ship one: a copy of /dev/null.
    execFileSync('mknod', ['-m', '666', join(lower, 'devnull-copy'), 'c', '1', '3']);
  });

  after(async () => {
    if (base) await rm(base, { recursive: true, force: true });
  });

  test('sets the hostname', RUN_BOUND, async () => {
    const c = await container({ args: ['sh', '-c', 'hostname > /tmp/out'] });
    assert.equal(await execute(c.spec), 0);
    assert.equal(await c.read('tmp/out'), `${c.spec.hostname}\n`);
  });

  test('runs the command as pid 1 of its own pid namespace', RUN_BOUND, async () => {
    const c = await container({ args: ['sh', '-c', 'ps > /tmp/out; exit 0'] });
    assert.equal(await execute(c.spec), 0);
    const procs = (await c.read('tmp/out'))
      .trim()
      .split('\n')
      .slice(1)
      .map((line) => line.trim().split(/\s+/));
    assert.equal(procs.length, 2, `processes: ${JSON.stringify(procs)}`);
    assert.equal(procs[0][0], '1');
    assert.equal(procs[0][2], 'sh');
    assert.match(procs[1].slice(2).join(' '), /\bps\b/);
  });

  test('reports /proc/1/cmdline as the command', RUN_BOUND, async () => {
    // A trailing command keeps sh from exec'ing cat in its own place as pid 1.
    const script = 'cat /proc/1/cmdline > /tmp/out; exit 0';
    const c = await container({ args: ['sh', '-c', script] });
    assert.equal(await execute(c.spec), 0);
    assert.equal(await c.read('tmp/out'), `sh\0-c\0${script}\0`);
  });

  test('resolves with the exit status', RUN_BOUND, async () => {
    const c = await container({ args: ['sh', '-c', 'exit 7'] });
    assert.equal(await execute(c.spec), 7);
  });

  test('resolves with 128+n when the container dies of signal n', RUN_BOUND, async () => {
    const c = await container({ args: ['sleep', '1000'] });
    let started = 0;
    const status = await execute(c.spec, {
      onStart: (pid) => {
        started = pid;
        process.kill(pid, 'SIGKILL');
      },
    });
    assert.ok(started > 1, `onStart pid ${started}`);
    assert.equal(status, 128 + 9);
  });

  test('forwards SIGTERM sent to the node process', RUN_BOUND, async () => {
    // sh as pid 1 ignores SIGTERM until its trap is set, so wait for the file
    // it touches after setting it (bounded: at most 2000 polls).
    const c = await container({ args: ['sh', '-c', 'trap "exit 42" TERM; touch /tmp/ready; sleep 1000 & wait'] });
    const run = execute(c.spec);
    let ready = false;
    for (let i = 0; i < 2000 && !ready; i++) {
      ready = existsSync(c.upper('tmp/ready'));
      if (!ready) await new Promise((r) => setTimeout(r, 10));
    }
    assert.ok(ready, 'container never became ready');
    process.kill(process.pid, 'SIGTERM');
    assert.equal(await run, 42);
    assert.equal(process.listenerCount('SIGTERM'), 0);
  });

  test('forwards only the signals its parent sends', RUN_BOUND, async () => {
    // A signal to the whole process group reaches minidock too, which
    // forwards it: the helper must not pass on a second copy.
    const script = 'trap "echo int" INT; trap "echo term; exit 3" TERM; touch /tmp/ready; while :; do sleep 1000 & wait; done';
    const c = await container({ args: ['sh', '-c', script] });
    const child = spawn(executorPath(), executorArgs(c.spec), { stdio: ['ignore', 'pipe', 'inherit', 'pipe', 'pipe'] });
    (child.stdio[4] as Writable).end(executorEnv(c.spec));
    let out = '';
    child.stdout!.on('data', (d: Buffer) => (out += d.toString()));
    const closed = new Promise<number | null>((resolve) => child.once('close', resolve));
    let ready = false;
    for (let i = 0; i < 2000 && !ready; i++) {
      ready = existsSync(c.upper('tmp/ready'));
      if (!ready) await new Promise((r) => setTimeout(r, 10));
    }
    assert.ok(ready, 'container never became ready');
    // From another process, then from the parent (this one).
    execFileSync('kill', ['-INT', String(child.pid)]);
    child.kill('SIGTERM');
    assert.equal(await closed, 3);
    assert.equal(out, 'term\n');
  });

  test('kills the container when aborted', RUN_BOUND, async () => {
    const c = await container({ args: ['sleep', '1000'] });
    const ac = new AbortController();
    const status = await execute(c.spec, { signal: ac.signal, onStart: () => ac.abort() });
    assert.equal(status, 137);
  });

  test('rejects with the abort reason when aborted before the start', RUN_BOUND, async () => {
    const c = await container({ args: ['true'] });
    let started = false;
    await assert.rejects(execute(c.spec, { signal: AbortSignal.abort(), onStart: () => (started = true) }), {
      name: 'AbortError',
    });
    assert.equal(started, false);
  });

  test('rejects with the error onStart throws, and kills the container', RUN_BOUND, async () => {
    const c = await container({ args: ['sleep', '1000'] });
    const boom = new Error('onStart failed');
    await assert.rejects(
      execute(c.spec, {
        onStart: () => {
          throw boom;
        },
      }),
      (err) => err === boom,
    );
  });

  test('rejects a missing command with ContainerExecError 127', RUN_BOUND, async () => {
    const c = await container({ args: ['no-such-command'] });
    await assert.rejects(execute(c.spec), (err: unknown) => {
      assert.ok(err instanceof ContainerExecError);
      assert.equal(err.exitCode, 127);
      assert.equal(err.message, 'exec "no-such-command": executable file not found in $PATH');
      return true;
    });
  });

  test('rejects a missing absolute path with ContainerExecError 127', RUN_BOUND, async () => {
    const c = await container({ args: ['/no/such'] });
    await assert.rejects(execute(c.spec), (err: unknown) => {
      assert.ok(err instanceof ContainerExecError);
      assert.equal(err.exitCode, 127);
      assert.equal(err.message, 'exec "/no/such": no such file or directory');
      return true;
    });
  });

  test('rejects a non-executable file with ContainerExecError 126', RUN_BOUND, async () => {
    const c = await container({ args: ['/etc/passwd'] });
    await assert.rejects(execute(c.spec), (err: unknown) => {
      assert.ok(err instanceof ContainerExecError);
      assert.equal(err.exitCode, 126);
      assert.equal(err.message, 'exec "/etc/passwd": permission denied');
      return true;
    });
  });

  test('rejects a failed set-up step with RuntimeSetupError naming it', RUN_BOUND, async () => {
    const c = await container({ args: ['true'] });
    c.spec.overlay.data = c.spec.overlay.data.replace('lowerdir=lower', 'lowerdir=no-such-lower');
    await assert.rejects(execute(c.spec), (err: unknown) => {
      assert.ok(err instanceof RuntimeSetupError);
      assert.equal(err.step, 'mount');
      assert.equal(err.message, `mount overlay \`${c.spec.overlay.rootfs}\`: No such file or directory`);
      return true;
    });
  });

  test('sets uid, gid and supplementary groups', RUN_BOUND, async () => {
    const c = await container({
      args: ['sh', '-c', 'grep -E "^(Uid|Gid|Groups):" /proc/self/status > /tmp/out'],
      uid: 1000,
      gid: 1001,
      groups: [10, 20],
    });
    assert.equal(await execute(c.spec), 0);
    assert.deepEqual((await c.read('tmp/out')).split('\n'), [
      'Uid:\t1000\t1000\t1000\t1000',
      'Gid:\t1001\t1001\t1001\t1001',
      'Groups:\t10 20 ',
      '',
    ]);
  });

  test('sets exactly the given environment and creates the cwd', RUN_BOUND, async () => {
    const c = await container({
      args: ['sh', '-c', 'pwd > /tmp/out; cat /proc/1/environ > /tmp/env; exit 0'],
      env: ['FOO=bar baz', 'PATH=/bin'],
      cwd: '/srv/app/data',
    });
    assert.equal(await execute(c.spec), 0);
    assert.equal(await c.read('tmp/out'), '/srv/app/data\n');
    assert.equal(await c.read('tmp/env'), 'FOO=bar baz\0PATH=/bin\0');
    assert.equal(((await stat(c.upper('srv/app/data'))).mode & 0o7777).toString(8), '755');
  });

  test('sets the default PATH when the environment has none', RUN_BOUND, async () => {
    const c = await container({ args: ['sh', '-c', 'cat /proc/1/environ > /tmp/env; exit 0'], env: [] });
    assert.equal(await execute(c.spec), 0);
    assert.equal(await c.read('tmp/env'), 'PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin\0');
  });

  test('gives stdin /dev/null unless asked to keep it', RUN_BOUND, async () => {
    const c = await container({ args: ['sh', '-c', 'ls -l /proc/self/fd/0 > /tmp/out'] });
    assert.equal(await execute(c.spec), 0);
    assert.match(await c.read('tmp/out'), / -> \/dev\/null\n$/);
  });

  test('leaves nothing of the host visible', RUN_BOUND, async () => {
    const marker = join(base, 'host-marker');
    await writeFile(marker, 'host\n');
    const c = await container({
      args: ['sh', '-c', `test -e ${marker}; echo $? > /tmp/out; cat /proc/self/mountinfo > /tmp/mounts; ls /proc/self/fd > /tmp/fds`],
    });
    assert.equal(await execute(c.spec), 0);
    assert.equal(await c.read('tmp/out'), '1\n');
    const mountPoints = (await c.read('tmp/mounts'))
      .trim()
      .split('\n')
      .map((line) => line.split(' ')[4]);
    // The container's /proc and /sys show what the host's do: same kernel.
    const hidden = [...MASKED_PATHS, ...READONLY_PATHS].filter((p) => existsSync(p));
    assert.deepEqual(mountPoints, ['/', '/proc', '/dev', '/dev/pts', '/dev/shm', '/sys', ...hidden]);
    // ls itself holds one more fd for the directory it lists.
    assert.deepEqual((await c.read('tmp/fds')).trim().split('\n').map(Number).slice(0, 3), [0, 1, 2]);
    assert.ok((await c.read('tmp/fds')).trim().split('\n').length <= 4);
  });

  test('has only lo, up, and a read-only /sys', RUN_BOUND, async () => {
    const c = await container({
      args: [
        'sh',
        '-c',
        'ls /sys/class/net > /tmp/out; cat /sys/class/net/lo/flags > /tmp/flags; touch /sys/x 2> /tmp/err; echo $? > /tmp/rc',
      ],
    });
    assert.equal(await execute(c.spec), 0);
    assert.equal(await c.read('tmp/out'), 'lo\n');
    assert.equal(Number.parseInt(await c.read('tmp/flags'), 16) & 1, 1, 'IFF_UP');
    assert.notEqual(await c.read('tmp/rc'), '0\n');
    assert.match(await c.read('tmp/err'), /Read-only file system/);
  });

  test('joins the cgroup before the command runs', RUN_BOUND, async (t) => {
    const v1 = '/sys/fs/cgroup/pids';
    const v2 = existsSync('/sys/fs/cgroup/unified/cgroup.procs') ? '/sys/fs/cgroup/unified' : '/sys/fs/cgroup';
    const parent = existsSync(join(v1, 'cgroup.procs')) ? v1 : v2;
    if (!existsSync(join(parent, 'cgroup.procs'))) return t.skip('needs a pids (v1) or unified (v2) cgroup hierarchy');

    const name = `minidock-exec-test-${process.pid}`;
    const cg = join(parent, name);
    await mkdir(cg);
    try {
      const c = await container({ args: ['sh', '-c', 'cat /proc/self/cgroup > /tmp/out'], cgroupProcs: [join(cg, 'cgroup.procs')] });
      let procs = '';
      let started = 0;
      const status = await execute(c.spec, {
        onStart: (pid) => {
          started = pid;
          procs = readFileSync(join(cg, 'cgroup.procs'), 'utf8');
        },
      });
      assert.equal(status, 0);
      assert.deepEqual(procs.trim().split('\n'), [String(started)]);
      // Its own cgroup namespace, rooted where it was put: every path is "/".
      const lines = (await c.read('tmp/out')).trim().split('\n');
      assert.ok(lines.length > 0 && lines.every((l) => /^\d+:[^:]*:\/$/.test(l)), `cgroup lines: ${JSON.stringify(lines)}`);
      assert.ok(lines.some((l) => l.includes(parent === v1 ? ':pids:' : '::')), `cgroup lines: ${JSON.stringify(lines)}`);
    } finally {
      await rmdir(cg);
    }
  });

  test('keeps only the default capabilities as root', RUN_BOUND, async () => {
    const script = [
      'grep -E "^Cap(Inh|Prm|Eff|Bnd|Amb):" /proc/self/status > /tmp/caps',
      'mkdir -p /mnt; mount -t tmpfs none /mnt 2> /tmp/mount.err; echo $? > /tmp/mount',
      'mknod /tmp/x b 1 1 2> /tmp/mknod.err; echo $? > /tmp/mknod',
      'dmesg > /dev/null 2> /tmp/dmesg.err; echo $? > /tmp/dmesg',
      'exit 0',
    ].join('; ');
    const c = await container({ args: ['sh', '-c', script] });
    assert.equal(await execute(c.spec), 0);
    assert.deepEqual((await c.read('tmp/caps')).split('\n'), [
      'CapInh:\t0000000000000000',
      `CapPrm:\t${KEPT_MASK}`,
      `CapEff:\t${KEPT_MASK}`,
      `CapBnd:\t${KEPT_MASK}`,
      'CapAmb:\t0000000000000000',
      '',
    ]);
    for (const what of ['mount', 'mknod', 'dmesg']) {
      assert.notEqual(await c.read(`tmp/${what}`), '0\n', `${what}: ${await c.read(`tmp/${what}.err`)}`);
      assert.match(await c.read(`tmp/${what}.err`), /operation not permitted|permission denied/i, what);
    }
    assert.equal(existsSync(c.upper('tmp/x')), false);
  });

  test('gives a non-root user no capabilities at all', RUN_BOUND, async () => {
    const c = await container({
      args: ['sh', '-c', 'grep -E "^Cap(Inh|Prm|Eff|Bnd|Amb):" /proc/self/status > /tmp/caps'],
      uid: 1000,
      gid: 1000,
    });
    assert.equal(await execute(c.spec), 0);
    assert.deepEqual((await c.read('tmp/caps')).split('\n'), [
      'CapInh:\t0000000000000000',
      'CapPrm:\t0000000000000000',
      'CapEff:\t0000000000000000',
      `CapBnd:\t${KEPT_MASK}`,
      'CapAmb:\t0000000000000000',
      '',
    ]);
  });

  test('masks kernel files and makes /proc/sys read-only', RUN_BOUND, async () => {
    // The same kernel, so what exists on the host exists inside.
    const masked = MASKED_PATHS.filter((p) => existsSync(p));
    const sizes = masked.map((p) => (statSync(p).isDirectory() ? `ls -A ${p} | wc -l` : `cat ${p} | wc -c`));
    const script = [
      '{ echo other > /proc/sys/kernel/hostname; } 2> /tmp/hostname.err; echo $? > /tmp/hostname',
      '{ echo 1 > /proc/sys/vm/drop_caches; } 2> /tmp/drop.err; echo $? > /tmp/drop',
      'hostname > /tmp/name',
      `{ ${sizes.map((cmd) => `${cmd};`).join(' ')} } > /tmp/sizes`,
      'exit 0',
    ].join('; ');
    const c = await container({ args: ['sh', '-c', script] });
    assert.equal(await execute(c.spec), 0);
    for (const what of ['hostname', 'drop']) {
      assert.notEqual(await c.read(`tmp/${what}`), '0\n', what);
      assert.match(await c.read(`tmp/${what}.err`), /Read-only file system/, what);
    }
    assert.equal(await c.read('tmp/name'), `${c.spec.hostname}\n`);
    const empty = masked.map((p) => `${p} 0`);
    const seen = (await c.read('tmp/sizes')).trim().split('\n').map((n, i) => `${masked[i]} ${n.trim()}`);
    assert.deepEqual(seen, empty);
    // /proc/timer_list is never empty unmasked; make sure the check means something.
    if (existsSync('/proc/timer_list')) assert.ok(readFileSync('/proc/timer_list').length > 0);
  });

  test('ignores device nodes in the image but keeps its own /dev', RUN_BOUND, async () => {
    const script = 'cat /devnull-copy 2> /tmp/err; echo $? > /tmp/rc; echo x > /dev/null; echo $? > /tmp/null';
    const c = await container({ args: ['sh', '-c', script] });
    assert.equal(await execute(c.spec), 0);
    assert.notEqual(await c.read('tmp/rc'), '0\n');
    assert.match(await c.read('tmp/err'), /Permission denied/);
    assert.equal(await c.read('tmp/null'), '0\n');
  });

  test('runs in its own cgroup namespace', RUN_BOUND, async () => {
    const c = await container({ args: ['sh', '-c', 'readlink /proc/self/ns/cgroup > /tmp/out'] });
    assert.equal(await execute(c.spec), 0);
    const inside = (await c.read('tmp/out')).trim();
    assert.match(inside, /^cgroup:\[\d+\]$/);
    assert.notEqual(inside, readlinkSync('/proc/self/ns/cgroup'));
  });

  test('refuses new user namespaces through seccomp', RUN_BOUND, async () => {
    const script = 'grep "^Seccomp:" /proc/self/status > /tmp/mode; unshare -U true 2> /tmp/err; echo $? > /tmp/rc';
    const c = await container({ args: ['sh', '-c', script] });
    assert.equal(await execute(c.spec), 0);
    assert.equal(await c.read('tmp/mode'), 'Seccomp:\t2\n');
    assert.notEqual(await c.read('tmp/rc'), '0\n');
    assert.match(await c.read('tmp/err'), /Operation not permitted/);
  });

  test('takes the container down when the node process is killed', RUN_BOUND, async () => {
    const c = await container({ args: ['sleep', '30'] });
    const pidFile = join(base, `pid-${counter}`);
    const module = new URL('../../src/runtime/executor.js', import.meta.url).href;
    const script = `
import { writeFileSync } from 'node:fs';
const { execute } = await import(process.argv[1]);
await execute(JSON.parse(process.argv[2]), { onStart: (pid) => writeFileSync(process.argv[3], String(pid)) });
`;
    const node = spawn(process.execPath, ['--input-type=module', '-e', script, module, JSON.stringify(c.spec), pidFile], {
      stdio: 'ignore',
    });
    const exited = new Promise((resolve) => node.once('exit', resolve));
    const alive = (pid: number) => {
      try {
        // A zombie waiting for init to reap it runs no more.
        return !/^\d+ \(.*\) Z/.test(readFileSync(`/proc/${pid}/stat`, 'utf8'));
      } catch {
        return false;
      }
    };
    let pid = 0;
    try {
      for (let i = 0; i < 2000 && !pid; i++) {
        if (existsSync(pidFile)) pid = Number(readFileSync(pidFile, 'utf8'));
        if (!pid) await new Promise((r) => setTimeout(r, 10));
      }
      assert.ok(pid > 1, 'container never started');
      assert.ok(alive(pid));
      node.kill('SIGKILL');
      await exited;
      // Bounded: 50 polls, 100 ms apart.
      for (let i = 0; i < 50 && alive(pid); i++) await new Promise((r) => setTimeout(r, 100));
      assert.equal(alive(pid), false, `container ${pid} outlived the node process`);
    } finally {
      node.kill('SIGKILL');
      if (pid > 1 && alive(pid)) process.kill(pid, 'SIGKILL');
    }
  });

  test('relays a pseudo-terminal and its exit status', RUN_BOUND, async (t) => {
    if (!existsSync('/usr/bin/script')) return t.skip('needs script(1) from bsdutils for a host pty');
    const c = await container({ args: ['sh'], tty: true, stdin: true });
    const logFile = join(base, `tty-${counter}.log`);
    const helper = [executorPath(), ...executorArgs(c.spec)].map(shellQuote).join(' ');
    // An empty environment on fd 4: the helper then sets only the default PATH.
    const child = spawn('script', ['-qec', `exec 3>${shellQuote(logFile)} 4</dev/null; exec ${helper}`, '/dev/null'], {
      stdio: ['pipe', 'pipe', 'inherit'],
    });
    let out = '';
    let typed = false;
    child.stdout.on('data', (d: Buffer) => {
      out += d.toString();
      // Type once the shell prompts; the echo shows "$((6*7))", only the shell prints 42.
      if (!typed && out.includes('# ')) {
        typed = true;
        child.stdin.write('echo tty-$((6*7)) $(tty); exit 3\n');
      }
    });
    const code = await new Promise<number | null>((resolve) => child.once('close', resolve));
    assert.equal(code, 3, `output: ${JSON.stringify(out)}`);
    assert.match(out, /tty-42 \/dev\/pts\/0/);
    const records = (await readFile(logFile, 'utf8')).trim().split('\n').map((l) => JSON.parse(l));
    assert.deepEqual(records.at(-1), { exit: 3 });
  });

  test('relays a host terminal given without a pty, so the container cannot reopen it', RUN_BOUND, async (t) => {
    if (!existsSync('/usr/bin/script')) return t.skip('needs script(1) from bsdutils for a host pty');
    const c = await container({ args: ['sh', '-c', 'stat -L -c %F /proc/self/fd/0 /proc/self/fd/1 /proc/self/fd/2; exit 6'], stdin: true });
    const logFile = join(base, `term-${counter}.log`);
    const helper = [executorPath(), ...executorArgs(c.spec)].map(shellQuote).join(' ');
    const child = spawn('script', ['-qec', `exec 3>${shellQuote(logFile)} 4</dev/null; exec ${helper}`, '/dev/null'], {
      stdio: ['pipe', 'pipe', 'inherit'],
    });
    let out = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    const code = await new Promise<number | null>((resolve) => child.once('close', resolve));
    assert.equal(code, 6, `output: ${JSON.stringify(out)}`);
    assert.equal(out, 'fifo\r\nfifo\r\nfifo\r\n');
  });

  test('copies the host window size at start and on SIGWINCH, in raw mode', RUN_BOUND, async (t) => {
    const python = ['/usr/bin/python3', '/usr/local/bin/python3'].find((p) => existsSync(p));
    if (!python) return t.skip('needs python3 for its pty module');
    const c = await container({ args: ['sh'], tty: true, stdin: true });
    const logFile = join(base, `winsize-${counter}.log`);
    // pty.fork makes the pty the helper's controlling terminal, so resizing
    // it sends the helper SIGWINCH as a terminal emulator would.
    const script = `
import fcntl, os, pty, struct, sys, termios
def size(fd, rows, cols):
    fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack('HHHH', rows, cols, 0, 0))
pid, fd = pty.fork()
if pid == 0:
    size(0, 33, 99)
    log = os.open(sys.argv[1], os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    os.dup2(log, 3)
    os.set_inheritable(3, True)
    os.execv(sys.argv[2], sys.argv[2:])
out, step, raw = b'', 0, False
while True:
    try:
        data = os.read(fd, 4096)
    except OSError:
        break
    if not data:
        break
    out += data
    if step == 0 and b'# ' in out:
        step = 1
        os.write(fd, b'stty size\\n')
    elif step == 1 and b'33 99' in out:
        step = 2
        raw = not termios.tcgetattr(fd)[3] & termios.ICANON
        size(fd, 40, 120)
        os.write(fd, b'stty size; exit 5\\n')
_, status = os.waitpid(pid, 0)
lflag = termios.tcgetattr(fd)[3]
out += b'\\nraw-while-running=%d cooked-after=%d\\n' % (raw, bool(lflag & termios.ICANON and lflag & termios.ECHO))
sys.stdout.write(out.decode(errors='replace'))
sys.exit(os.waitstatus_to_exitcode(status))
`;
    // fd 4, the environment, is inherited through pty.fork: empty (closed at
    // once), so only the default PATH.
    const child = spawn(python, ['-c', script, logFile, executorPath(), ...executorArgs(c.spec)], {
      stdio: ['ignore', 'pipe', 'inherit', 'ignore', 'pipe'],
    });
    (child.stdio[4] as Writable).end();
    let out = '';
    child.stdout!.on('data', (d: Buffer) => (out += d.toString()));
    const code = await new Promise<number | null>((resolve) => child.once('close', resolve));
    assert.equal(code, 5, `output: ${JSON.stringify(out)}`);
    assert.match(out, /\r\n33 99\r\n/);
    assert.match(out, /\r\n40 120\r\n/);
    // The helper made the host terminal raw and restored it on exit.
    assert.match(out, /\nraw-while-running=1 cooked-after=1\n/);
  });

  test('keeps relaying pty output after host stdin ends', RUN_BOUND, async () => {
    const c = await container({ args: ['sh', '-c', 'echo one; sleep 0.2; echo two; exit 4'], tty: true, stdin: true });
    const { code, out, records } = await runHelper(c.spec, '');
    assert.equal(code, 4);
    assert.equal(out, 'one\r\ntwo\r\n');
    assert.deepEqual(records.at(-1), { exit: 4 });
  });

  test('passes stdin through when asked', RUN_BOUND, async () => {
    const c = await container({ args: ['sh', '-c', 'read x; echo "[$x]"'], stdin: true });
    const { code, out } = await runHelper(c.spec, 'piped\n');
    assert.equal(code, 0);
    assert.equal(out, '[piped]\n');
  });
});

describe('executorArgs', () => {
  const spec: ExecSpec = {
    overlay: { data: 'lowerdir=l,upperdir=u,workdir=w', mountCwd: '/x', rootfs: '/x/merged' },
    hostname: 'h',
    args: ['sh', '-c', 'echo --tty'],
    env: ['A=1'],
    cwd: '/w',
    uid: 1,
    gid: 2,
    groups: [3, 4],
    tty: true,
    stdin: false,
    cgroupProcs: ['/cg/cgroup.procs'],
  };

  test('puts every option before -- and the command after it', () => {
    assert.deepEqual(executorArgs(spec), [
      '--log-fd', '3',
      '--mount-cwd', '/x',
      '--overlay', 'lowerdir=l,upperdir=u,workdir=w',
      '--rootfs', '/x/merged',
      '--hostname', 'h',
      '--cwd', '/w',
      '--uid', '1',
      '--gid', '2',
      '--groups', '3,4',
      '--env-fd', '4',
      '--cgroup-procs', '/cg/cgroup.procs',
      '--tty',
      '--', 'sh', '-c', 'echo --tty',
    ]);
  });

  const bad: [string, Partial<ExecSpec>][] = [
    ['an empty command', { args: [] }],
    ['a negative uid', { uid: -1 }],
    ['a fractional gid', { gid: 1.5 }],
    ['an environment entry without "="', { env: ['FOO'] }],
    ['an environment entry with an empty name', { env: ['=x'] }],
    ['an environment entry holding a NUL byte', { env: ['A=x\0y'] }],
    ['an environment entry longer than execve takes', { env: [`A=${'x'.repeat(32 * 4096)}`] }],
  ];
  for (const [name, change] of bad) {
    test(`refuses ${name}`, () => {
      assert.throws(() => executorArgs({ ...spec, ...change }), RuntimeSetupError);
    });
  }
});

describe('execError', () => {
  test('reads like Docker for each errno', () => {
    assert.equal(execError(2, 'foo').message, 'exec "foo": executable file not found in $PATH');
    assert.equal(execError(2, 'foo').exitCode, 127);
    assert.equal(execError(2, '/x/foo').message, 'exec "/x/foo": no such file or directory');
    assert.equal(execError(13, 'foo').message, 'exec "foo": permission denied');
    assert.equal(execError(13, 'foo').exitCode, 126);
    assert.equal(execError(8, '/s').message, 'exec "/s": exec format error');
  });
});
