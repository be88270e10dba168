/**
 * The error vocabulary shared by every part of minidock.
 *
 * Every error a user can cause or meet is a MinidockError with a stable
 * `code`, a lower-case message of the form "<operation> <object>: <cause>"
 * and an optional `hint` telling what to try next. The CLI prints these as
 * one line (plus the hint) and exits 125; anything else is a bug and is
 * shown with its stack.
 */

export interface MinidockErrorOptions {
  hint?: string;
  cause?: unknown;
}

/** Base class of all errors minidock reports to its users. */
export class MinidockError extends Error {
  readonly code: string;
  readonly hint?: string;

  constructor(code: string, message: string, options: MinidockErrorOptions = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'MinidockError';
    this.code = code;
    this.hint = options.hint;
  }
}

/** A reference string that does not parse as a Docker image reference. */
export class InvalidReferenceError extends MinidockError {
  constructor(readonly input: string, reason: string, options: MinidockErrorOptions = {}) {
    super('ERR_BAD_REFERENCE', `invalid reference format ${JSON.stringify(input)}: ${reason}`, options);
    this.name = 'InvalidReferenceError';
  }
}

/** Content whose digest or size disagrees with the descriptor it came with. */
export class DigestMismatchError extends MinidockError {
  constructor(
    readonly what: string,
    readonly expected: string,
    readonly actual: string,
  ) {
    super('ERR_DIGEST_MISMATCH', `verify ${what}: got ${actual}, expected ${expected}`);
    this.name = 'DigestMismatchError';
  }
}

/** An HTTP answer from a registry that is not what the protocol allows. */
export class RegistryError extends MinidockError {
  constructor(
    message: string,
    readonly status: number | undefined,
    readonly temporary: boolean,
    options: MinidockErrorOptions & { errorCodes?: string[]; method?: string; url?: string } = {},
  ) {
    super('ERR_REGISTRY', message, options);
    this.name = 'RegistryError';
    this.errorCodes = options.errorCodes ?? [];
    this.method = options.method;
    this.url = options.url;
  }

  readonly errorCodes: string[];
  /** The request's method, when the error answers a request. */
  readonly method?: string;
  /** The request's URL with userinfo and secret query values redacted. */
  readonly url?: string;
}

/** A layer entry that would write outside its layer directory. */
export class UnsafePathError extends MinidockError {
  constructor(readonly entryPath: string, reason: string) {
    super('ERR_UNSAFE_PATH', `refuse layer entry ${JSON.stringify(entryPath)}: ${reason}`);
    this.name = 'UnsafePathError';
  }
}

/** Input that is valid but uses a feature minidock does not implement. */
export class NotImplementedError extends MinidockError {
  constructor(feature: string, options: MinidockErrorOptions = {}) {
    super('ERR_NOT_IMPLEMENTED', `not implemented: ${feature}`, options);
    this.name = 'NotImplementedError';
  }
}

/** A step of container set-up that failed in the native executor. */
export class RuntimeSetupError extends MinidockError {
  constructor(message: string, readonly step?: string, options: MinidockErrorOptions = {}) {
    super('ERR_RUNTIME_SETUP', message, options);
    this.name = 'RuntimeSetupError';
  }
}

/**
 * The container's command could not be executed (Docker's 126 and 127):
 * `exitCode` is 127 when the file does not exist, 126 otherwise.
 */
export class ContainerExecError extends MinidockError {
  constructor(
    message: string,
    readonly exitCode: 126 | 127,
    readonly errno?: number,
    options: MinidockErrorOptions = {},
  ) {
    super('ERR_CONTAINER_EXEC', message, options);
    this.name = 'ContainerExecError';
  }
}

/** Something the user named (image, container) that the store does not hold. */
export class NotFoundError extends MinidockError {
  constructor(message: string, options: MinidockErrorOptions = {}) {
    super('ERR_NOT_FOUND', message, options);
    this.name = 'NotFoundError';
  }
}

/** Returns err's message, for errors of unknown type. */
export function messageOf(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
