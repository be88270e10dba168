/**
 * `minidock login [--username U] [--password-stdin] SERVER` and
 * `minidock logout SERVER`, keeping credentials where Docker keeps them.
 */
import { MinidockError } from '../../errors.js';
import { registryOptions, type Context } from '../context.js';

export interface LoginFlags {
  username?: string;
  passwordStdin?: boolean;
}

/** Reads all of stdin; drops one trailing newline (and CR), as Docker does. */
async function readStdin(): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const chunk of process.stdin) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks).toString('utf8').replace(/\n$/, '').replace(/\r$/, '');
}

/** Asks on stderr and reads one line from the terminal on stdin, without echo when hidden. */
async function ask(question: string, hidden: boolean): Promise<string> {
  const stdin = process.stdin;
  process.stderr.write(question);
  return new Promise((resolve, reject) => {
    let line = '';
    const finish = (err?: Error) => {
      stdin.off('data', onData);
      if (hidden) stdin.setRawMode(false);
      stdin.pause();
      if (hidden) process.stderr.write('\n');
      if (err) reject(err);
      else resolve(line);
    };
    const onData = (chunk: Buffer) => {
      for (const ch of chunk.toString('utf8')) {
        if (ch === '\r' || ch === '\n') return finish();
        if (ch === '\x03' || ch === '\x04') {
          return finish(new MinidockError('ERR_CANCELLED', 'login: cancelled at the prompt'));
        }
        if (ch === '\x7f' || ch === '\b') line = line.slice(0, -1);
        else line += ch;
      }
    };
    if (hidden) stdin.setRawMode(true);
    else stdin.setEncoding('utf8');
    stdin.on('data', onData);
    stdin.resume();
  });
}

/**
 * Verifies the credentials against SERVER's /v2/ and, when it accepts
 * them, stores them in Docker's config.json (or its credential helper).
 * The password comes from stdin with --password-stdin, else from a prompt
 * when stdin is a terminal; otherwise the command refuses.
 */
export async function loginCommand(ctx: Context, server: string, flags: LoginFlags): Promise<void> {
  const { CredentialStore, RegistryClient, normalizeServer } = await import('../../registry/index.js');
  const host = normalizeServer(server);
  const op = `login to ${host}`;
  if (host === '') throw new MinidockError('ERR_BAD_ARGUMENT', `login: server ${JSON.stringify(server)} names no host`);

  let username = flags.username;
  let password: string;
  if (flags.passwordStdin) {
    if (username === undefined || username === '') {
      throw new MinidockError('ERR_BAD_ARGUMENT', `${op}: --password-stdin needs --username`);
    }
    password = await readStdin();
  } else if (process.stdin.isTTY) {
    if (username === undefined || username === '') username = (await ask('Username: ', false)).trim();
    password = await ask('Password: ', true);
  } else {
    throw new MinidockError('ERR_BAD_ARGUMENT', `${op}: no password: stdin is not a terminal`, {
      hint: 'write the password to stdin and pass --username and --password-stdin',
    });
  }
  if (username === undefined || username === '') throw new MinidockError('ERR_BAD_ARGUMENT', `${op}: empty user name`);
  if (password === '') throw new MinidockError('ERR_BAD_ARGUMENT', `${op}: empty password`);

  const creds = { username, password };
  const client = new RegistryClient({
    logger: ctx.logger,
    ...registryOptions(ctx),
    credentials: (h) => (h === host ? creds : undefined),
  });
  try {
    await client.checkLogin(host);
  } finally {
    await client.close();
  }

  const store = new CredentialStore({ configPath: ctx.dockerConfigPath, env: process.env, logger: ctx.logger });
  const where = await store.store(host, creds);
  if (where === 'file') {
    process.stderr.write(`warning: the password is stored unencrypted in ${store.configPath}\n`);
  }
  process.stdout.write('Login Succeeded\n');
}

/** Removes SERVER's credentials from Docker's config.json (and its credential helper). */
export async function logoutCommand(ctx: Context, server: string): Promise<void> {
  const { CredentialStore, normalizeServer } = await import('../../registry/index.js');
  const host = normalizeServer(server);
  if (host === '') throw new MinidockError('ERR_BAD_ARGUMENT', `logout: server ${JSON.stringify(server)} names no host`);
  const store = new CredentialStore({ configPath: ctx.dockerConfigPath, env: process.env, logger: ctx.logger });
  if (await store.erase(host)) process.stdout.write(`Removing login credentials for ${host}\n`);
  else process.stdout.write(`Not logged in to ${host}\n`);
}
