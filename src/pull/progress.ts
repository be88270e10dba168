/**
 * Progress of a pull, as data. The CLI decides how to draw it.
 */

export type PullPhase =
  | 'waiting'
  | 'downloading'
  | 'verifying'
  | 'complete'
  | 'exists';

/** One update on one layer (or config) of a pull. */
export interface ProgressEvent {
  /** The blob's digest. */
  digest: string;
  phase: PullPhase;
  /** Bytes expected, from the descriptor. */
  total: number;
  /** Bytes done so far. */
  complete: number;
}

export type ProgressSink = (e: ProgressEvent) => void;
