import koffi from 'koffi';

/** The few libc calls the daemon needs, through koffi (no compiler, ~30 ns a call). */
const libc = koffi.load('libc.so.6');
const dup = libc.func('int dup(int oldfd)');
const dup2 = libc.func('int dup2(int oldfd, int newfd)');

/**
 * Gives native code's prints their own stream: fd 1 (where C libraries such as PortAudio printf) is
 * pointed at stderr, and a duplicate of the original stdout is returned for the JSON log. The log stream
 * stays parseable whatever a library prints.
 */
export function separateNativeStdout(): number {
  const logFd = dup(1) as number;
  if (logFd < 0) throw new Error('dup(1) failed');
  if ((dup2(2, 1) as number) < 0) throw new Error('dup2(2, 1) failed');
  return logFd;
}
