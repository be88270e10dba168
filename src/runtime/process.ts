/**
 * Telling a container's process from whatever later reuses its pid: a
 * process is named by its pid together with its start time (field 22 of
 * /proc/<pid>/stat, in clock ticks since boot), which no later process
 * with the same pid shares.
 */
import { readFileSync } from 'node:fs';

/** The fields of /proc/<pid>/stat after the command name, or undefined when there is no such process. */
function statFields(pid: number): string[] | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // The command name is in parentheses and may itself hold spaces or ")".
    return stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  } catch {
    return undefined;
  }
}

/** Returns the start time of process pid, or undefined when it does not exist. */
export function processStartTime(pid: number): string | undefined {
  return statFields(pid)?.[19];
}

/**
 * True when pid is alive and is the process that started at `start` (when
 * given). A zombie, dead but not yet reaped, is not alive.
 */
export function isProcessAlive(pid: number | undefined, start?: string): boolean {
  if (pid === undefined) return false;
  const fields = statFields(pid);
  if (fields === undefined || fields[0] === 'Z') return false;
  return start === undefined || fields[19] === start;
}
