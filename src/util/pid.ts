/** Whether a process with this pid exists (EPERM: it exists but is someone else's). */
export function isPidAlive(pid: number): boolean {
  if (!Number.isInteger(pid) || pid <= 0) return false;
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
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
