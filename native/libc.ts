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

const prctl = libc.func('int prctl(int option, unsigned long arg2, unsigned long arg3, unsigned long arg4, unsigned long arg5)');
const mlock = libc.func('int mlock(const void *addr, size_t len)');
const setrlimit = libc.func('int setrlimit(int resource, const void *rlim)');
const PR_SET_DUMPABLE = 4;
const PR_GET_DUMPABLE = 3;
const RLIMIT_CORE = 4;

/**
 * No core dumps of this process (they would hold keys): not dumpable, and a core size limit of 0.
 * Returns whether the kernel agreed.
 */
export function disableCoreDumps(): boolean {
  const zero = Buffer.alloc(16); // struct rlimit { rlim_t cur, max } = { 0, 0 }
  const a = (setrlimit(RLIMIT_CORE, zero) as number) === 0;
  const b = (prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) as number) === 0;
  return a && b;
}

export function isDumpable(): boolean {
  return (prctl(PR_GET_DUMPABLE, 0, 0, 0, 0) as number) !== 0;
}

/** Keeps `buf`'s pages out of swap (RLIMIT_MEMLOCK permitting); false when the OS refused. */
export function lockMemory(buf: Buffer): boolean {
  return (mlock(buf, buf.length) as number) === 0;
}

const adjtimex = libc.func('int adjtimex(void *buf)');
const TIME_ERROR = 5;

/**
 * Whether the kernel considers the clock synchronised (adjtimex's state, set by timesyncd, chrony or
 * ntpd alike): an unsynchronised clock makes every timestamp suspect.
 */
export function clockSynchronized(): boolean {
  const timex = Buffer.alloc(256); // struct timex, modes = 0: read only
  return (adjtimex(timex) as number) !== TIME_ERROR;
}
