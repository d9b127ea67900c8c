import koffi from 'koffi';

/**
 * systemd's notify protocol, through koffi: libsystemd's sd_notify where it is installed, else a
 * datagram written to $NOTIFY_SOCKET by hand (Node's dgram has no Unix datagram sockets). Without
 * $NOTIFY_SOCKET (not under systemd) every call is a no-op that returns false.
 */
type Sender = (state: string) => boolean;

function viaLibsystemd(): Sender | null {
  try {
    const lib = koffi.load('libsystemd.so.0');
    const sdNotify = lib.func('int sd_notify(int unset_environment, const char *state)');
    return (state) => (sdNotify(0, state) as number) > 0;
  } catch {
    return null;
  }
}

function viaSocket(): Sender {
  const libc = koffi.load('libc.so.6');
  const socket = libc.func('int socket(int domain, int type, int protocol)');
  const sendto = libc.func('long sendto(int fd, const void *buf, size_t len, int flags, const void *addr, uint32_t addrlen)');
  const close = libc.func('int close(int fd)');
  const AF_UNIX = 1;
  const SOCK_DGRAM = 2;
  const SOCK_CLOEXEC = 0o2000000;
  return (state) => {
    const path = process.env.NOTIFY_SOCKET;
    if (!path) return false;
    // struct sockaddr_un: sa_family (2 bytes) + sun_path (108); a leading '@' is the abstract namespace.
    const addr = Buffer.alloc(110);
    addr.writeUInt16LE(AF_UNIX, 0);
    const name = Buffer.from(path.startsWith('@') ? `\0${path.slice(1)}` : path);
    if (name.length > 107) return false;
    name.copy(addr, 2);
    const len = path.startsWith('@') ? 2 + name.length : 110;
    const fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0) as number;
    if (fd < 0) return false;
    try {
      const msg = Buffer.from(state);
      return (sendto(fd, msg, msg.length, 0, addr, len) as number) === msg.length;
    } finally {
      close(fd);
    }
  };
}

let sender: Sender | null = null;

/** Sends `state` (e.g. "READY=1", "STATUS=...", "STOPPING=1", "WATCHDOG=1") to systemd. */
export function sdNotify(state: string, opts: { forceSocket?: boolean } = {}): boolean {
  if (!process.env.NOTIFY_SOCKET) return false;
  if (opts.forceSocket) return viaSocket()(state);
  sender ??= viaLibsystemd() ?? viaSocket();
  return sender(state);
}

/** The watchdog interval systemd asks for (WATCHDOG_USEC, for this pid), in ms, or null. */
export function watchdogIntervalMs(): number | null {
  const usec = Number(process.env.WATCHDOG_USEC);
  const pid = process.env.WATCHDOG_PID;
  if (!Number.isFinite(usec) || usec <= 0 || (pid && Number(pid) !== process.pid)) return null;
  return usec / 1000;
}
