import koffi from 'koffi';
import { readFileSync } from 'node:fs';
import type { Socket } from 'node:net';
import { endianness } from 'node:os';

/**
 * Who is at the other end of a Unix-domain socket. Node has no API for SO_PEERCRED, so it is read here
 * through koffi's getsockopt: the control socket needs the peer's uid to allow the first administrator
 * only to root or the service group, and to record the uid in the audit trail.
 */
export interface PeerCred {
  pid: number;
  uid: number;
  gid: number;
  /** Supplementary groups of the peer, from /proc/<pid>/status "Groups:" (read when peerCred is called); [] if unreadable. */
  groups: number[];
}

// Loaded once, like native/libc.ts (which this file does not extend, to keep ownership separate).
const libc = koffi.load('libc.so.6');
const getsockopt = libc.func('int getsockopt(int fd, int level, int optname, void *optval, _Inout_ uint32_t *optlen)');

const SOL_SOCKET = 1;
const SO_PEERCRED = 17;
const UCRED_SIZE = 12; // struct ucred { int32 pid; uint32 uid; uint32 gid; }
const NO_ID = 0xffffffff; // the kernel's (uid_t)-1: a socket without peer credentials (e.g. TCP)
const LE = endianness() === 'LE';

/**
 * SO_PEERCRED of an accepted `net.Socket` on a Unix-domain server (the credentials the peer had when it
 * called connect()), plus its supplementary groups; null if the fd is not available, the call fails or
 * the socket carries no credentials (TCP, for instance).
 */
export function peerCred(sock: Socket): PeerCred | null {
  const fd = (sock as unknown as { _handle?: { fd?: unknown } | null })._handle?.fd;
  if (typeof fd !== 'number' || !Number.isInteger(fd) || fd < 0) return null;
  const optval = Buffer.alloc(UCRED_SIZE);
  const optlen = [UCRED_SIZE]; // socklen_t, in and out: koffi writes the kernel's length back into [0]
  let rc: number;
  try {
    rc = getsockopt(fd, SOL_SOCKET, SO_PEERCRED, optval, optlen) as number;
  } catch {
    return null;
  }
  if (rc !== 0 || optlen[0]! < UCRED_SIZE) return null;
  const pid = LE ? optval.readInt32LE(0) : optval.readInt32BE(0);
  const uid = LE ? optval.readUInt32LE(4) : optval.readUInt32BE(4);
  const gid = LE ? optval.readUInt32LE(8) : optval.readUInt32BE(8);
  if (uid === NO_ID && gid === NO_ID) return null;
  return { pid, uid, gid, groups: pid > 0 ? supplementaryGroups(pid) : [] };
}

/** The "Groups:" line of /proc/<pid>/status; [] if the process is gone or the file unreadable. */
function supplementaryGroups(pid: number): number[] {
  let status: string;
  try {
    status = readFileSync(`/proc/${pid}/status`, 'utf8');
  } catch {
    return [];
  }
  const line = /^Groups:[ \t]*(.*)$/m.exec(status);
  if (!line) return [];
  return line[1]!.split(/\s+/).filter((s) => /^\d+$/.test(s)).map(Number);
}

/** Whether the peer is root or in group `gid` (primary or supplementary). */
export function peerInGroup(cred: PeerCred, gid: number): boolean {
  return cred.uid === 0 || cred.gid === gid || cred.groups.includes(gid);
}
