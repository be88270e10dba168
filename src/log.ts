/**
 * The logger interface every domain takes through its options. Only the CLI
 * decides where log lines go; the default discards everything.
 */
export interface Logger {
  debug(message: string): void;
  info(message: string): void;
  warn(message: string): void;
}

/** A logger that drops every message. */
export const silentLogger: Logger = {
  debug() {},
  info() {},
  warn() {},
};
