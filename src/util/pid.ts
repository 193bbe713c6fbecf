import { readFileSync } from 'node:fs';
/** Whether a process with this pid exists (EPERM: it exists but is someone else's). */
export function isPidAlive(pid: number): boolean {
  if (!Number.isInteger(pid) || pid <= 0) return false;
  try {
    process.kill(pid, 0);
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
  // A zombie (exited, not yet reaped by a parent that is busy) still answers signal 0: it is not alive.
  return !isZombie(pid);
}

/** Linux: the process state in /proc/PID/stat is Z (or X). Elsewhere, or when unreadable: false. */
function isZombie(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // The state follows the command name, which is in parentheses and may itself contain ") ".
    const state = stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3);
    return state === 'Z' || state === 'X';
  } catch {
    return false;
  }
}

/**
 * A child that must not outlive this process, however it ends (a second Ctrl-C, a closed pipe): once
 * `watch(pid)` is called, this process's exit sends it SIGTERM, until `release()`.
 */
export function terminateOnExit(): { watch(pid: number): void; release(): void } {
  let child: number | undefined;
  const onExit = (): void => {
    if (child === undefined) return;
    try {
      process.kill(child, 'SIGTERM');
    } catch {
      // already gone
    }
  };
  process.on('exit', onExit);
  return {
    watch: (pid) => {
      child = pid;
    },
    release: () => {
      process.off('exit', onExit);
    },
  };
}
