// Processes by pid: whether one still runs.

/** Whether process `pid` runs (EPERM: it runs, as another user). */
export function pidAlive(pid: number): boolean {
  if (!pid) return false;
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}
