/**
 * Is the daemon's data directory on an encrypted disk (dm-crypt / LUKS)?
 *
 * Method, from what the kernel publishes (no tools run, nothing needs root):
 *  1. the real path of the directory (symlinks resolved; a directory not made yet counts as
 *     its nearest existing ancestor);
 *  2. the mount whose mount point is the longest prefix of that path, from /proc/self/mountinfo
 *     (field 3 is major:minor, field 5 the mount point; octal escapes such as \040 undone; of
 *     two mounts on the same point the later, visible one wins);
 *  3. /sys/dev/block/MAJ:MIN names the block device (a symlink ending in …/block/dm-1 or
 *     …/block/sda/sda2);
 *  4. a device-mapper device (<sys>/block/dm-N/dm/uuid) whose uuid starts with CRYPT- is a
 *     dm-crypt mapping made by cryptsetup (CRYPT-LUKS2-…, CRYPT-LUKS1-…, CRYPT-PLAIN-…, …),
 *     except CRYPT-VERITY-, CRYPT-INTEGRITY- and CRYPT-SUBDEV-, which protect integrity only;
 *  5. otherwise the devices under it are followed: <dir>/slaves/* (LVM on LUKS as Debian's
 *     guided install makes it: LVM-… on dm-0 CRYPT-LUKS2-…; md RAID on LUKS members) and a
 *     partition's parent disk. Everything under a device must be encrypted for it to count:
 *     an LVM volume group spanning one LUKS and one plain disk is not encrypted.
 *
 * Anything else (a plain partition or disk, tmpfs, overlay, NFS: major 0) is not encrypted.
 * btrfs reports an anonymous 0:N device in mountinfo; its mount source (/dev/mapper/…) is
 * followed instead. Nothing here throws: odd input gives `encrypted: false` and says why.
 *
 * Hardware self-encrypting drives (OPAL without LUKS2-OPAL), ZFS native encryption and fscrypt
 * are not visible this way and are reported as not encrypted.
 */
import { existsSync, readdirSync, readFileSync, readlinkSync, realpathSync, statSync } from 'node:fs';
import { basename, dirname, join, resolve } from 'node:path';

export interface EncryptedDiskOptions {
  /** Text of /proc/self/mountinfo; read from there when not given. */
  mountinfo?: string;
  /** Root of sysfs; default '/sys'. */
  sysRoot?: string;
  /** Resolves symlinks in the data path and in a mount source; default fs.realpathSync.native. */
  realpath?: (p: string) => string;
}

export interface MountInfoEntry {
  majorMinor: string;
  /** Path inside the mounted filesystem that is mounted here ('/' unless a bind mount). */
  root: string;
  mountPoint: string;
  fsType: string;
  source: string;
}

export interface BackingDevice {
  /** The real path that was looked up. */
  path: string;
  /** '' when no mount was found. */
  mountPoint: string;
  /** major:minor of the mount ('' when no mount was found). */
  majorMinor: string;
  fsType: string;
  source: string;
  /** Block device name as sysfs spells it ('dm-1', 'sda2', 'nvme0n1p3'); null when there is none. */
  device: string | null;
  /** The device's sysfs directory as /sys/dev/block names it (may not exist when sysfs is odd). */
  sysPath?: string;
  /** Why `device` is null; also a note when the device was found by the mount source. */
  reason?: string;
}

export interface EncryptedDiskResult {
  encrypted: boolean;
  mountPoint: string;
  /** 'dm-1', 'sda2', or major:minor ('0:45') when there is no block device. */
  device: string;
  /** Devices followed, top first: ['dm-1', 'dm-0']. */
  chain: string[];
  /** dm uuid of the dm-crypt mapping found, e.g. 'CRYPT-LUKS2-3f0c…-dm_crypt-0'. */
  cryptUuid?: string;
  /** Plain text for a log line or an error: what was found and, when not encrypted, how to fix it. */
  reason: string;
}

const FIX =
  'To fix: put the data directory on a LUKS2 volume (scripts/setup-encrypted-volume.sh sets one up; see docs/security.md).';

/** cryptsetup's dm uuid types that do not encrypt. */
const NOT_ENCRYPTING = new Set(['VERITY', 'INTEGRITY', 'SUBDEV']);
const MAX_DEPTH = 16;

function errText(err: unknown): string {
  const e = err as { code?: string; message?: string };
  return e?.code ?? e?.message ?? String(err);
}

/** Undo mountinfo's octal escapes (\040 space, \011 tab, \012 newline, \134 backslash). */
export function unescapeMountField(s: string): string {
  return s.replace(/\\([0-7]{3})/g, (_, oct: string) => String.fromCharCode(parseInt(oct, 8)));
}

/** Parse /proc/self/mountinfo; lines that do not parse are skipped. */
export function parseMountinfo(text: string): MountInfoEntry[] {
  const out: MountInfoEntry[] = [];
  for (const line of String(text ?? '').split('\n')) {
    const f = line.trim().split(' ');
    // id parent maj:min root mountpoint options [optional…] - fstype source superoptions
    const sep = f.indexOf('-', 6);
    if (f.length < 9 || sep < 0 || sep + 2 >= f.length) continue;
    const majorMinor = f[2]!;
    if (!/^\d+:\d+$/.test(majorMinor)) continue;
    const mountPoint = unescapeMountField(f[4]!);
    if (!mountPoint.startsWith('/')) continue;
    out.push({ majorMinor, root: unescapeMountField(f[3]!), mountPoint, fsType: f[sep + 1]!, source: unescapeMountField(f[sep + 2]!) });
  }
  return out;
}

function covers(mountPoint: string, path: string): boolean {
  if (mountPoint === '/') return path.startsWith('/');
  const mp = mountPoint.replace(/\/+$/, '');
  return path === mp || path.startsWith(mp + '/');
}

/** The mount that holds `path` (already real): longest mount point prefix, the later line on a tie. */
export function findMount(entries: MountInfoEntry[], path: string): MountInfoEntry | null {
  let best: MountInfoEntry | null = null;
  for (const e of entries) {
    if (covers(e.mountPoint, path) && (!best || e.mountPoint.length >= best.mountPoint.length)) best = e;
  }
  return best;
}

/** Real path of `p`; for a path that does not exist yet, the real path of its nearest existing ancestor plus the rest. */
function realPathOf(p: string, rp: (p: string) => string): string {
  let cur = resolve(p);
  const rest: string[] = [];
  for (let i = 0; i < 4096; i++) {
    try {
      return join(rp(cur), ...rest);
    } catch {
      const up = dirname(cur);
      if (up === cur) break;
      rest.unshift(basename(cur));
      cur = up;
    }
  }
  return resolve(p);
}

function defaultRealpath(p: string): string {
  return realpathSync.native(p);
}

function readTrim(file: string): string | null {
  try {
    return readFileSync(file, 'utf8').trim();
  } catch {
    return null;
  }
}

function isDir(p: string): boolean {
  try {
    return statSync(p).isDirectory();
  } catch {
    return false;
  }
}

/** sysfs directory of block device `name`: <sys>/block/<name>, <sys>/class/block/<name>, or `fallback`. */
function deviceDir(sys: string, name: string, fallback?: string): string | null {
  for (const d of [join(sys, 'block', name), join(sys, 'class', 'block', name), fallback]) {
    if (d && isDir(d)) return d;
  }
  return null;
}

/**
 * The mount and block device that hold `path`. Never throws; `device` is null (with `reason`)
 * when there is no block device: tmpfs, overlay, NFS, or a sysfs entry that is missing.
 */
export function findBackingDevice(path: string, opts: EncryptedDiskOptions = {}): BackingDevice {
  try {
    return backingDevice(path, opts ?? {});
  } catch (err) {
    return { path: String(path), mountPoint: '', majorMinor: '', fsType: '', source: '', device: null, reason: `lookup failed (${errText(err)})` };
  }
}

function backingDevice(path: string, opts: EncryptedDiskOptions): BackingDevice {
  const sys = opts.sysRoot ?? '/sys';
  const rp = opts.realpath ?? defaultRealpath;
  let real: string;
  try {
    real = realPathOf(String(path), rp);
  } catch {
    real = String(path);
  }
  const none = (reason: string, m?: MountInfoEntry): BackingDevice => ({
    path: real,
    mountPoint: m?.mountPoint ?? '',
    majorMinor: m?.majorMinor ?? '',
    fsType: m?.fsType ?? '',
    source: m?.source ?? '',
    device: null,
    reason,
  });

  let text = opts.mountinfo;
  if (text === undefined) {
    try {
      text = readFileSync('/proc/self/mountinfo', 'utf8');
    } catch (err) {
      return none(`cannot read /proc/self/mountinfo (${errText(err)})`);
    }
  }
  const m = findMount(parseMountinfo(text), real);
  if (!m) return none(`no mount in mountinfo holds ${real}`);

  const [major] = m.majorMinor.split(':');
  if (major === '0') {
    // btrfs (and a few others) report an anonymous device; the mount source names the real one.
    if (m.source.startsWith('/dev/')) {
      let name: string | null = null;
      try {
        name = basename(rp(m.source));
      } catch {
        name = null;
      }
      const dir = name ? deviceDir(sys, name) : null;
      if (name && dir) {
        return {
          path: real,
          mountPoint: m.mountPoint,
          majorMinor: m.majorMinor,
          fsType: m.fsType,
          source: m.source,
          device: name,
          sysPath: dir,
          reason: `${m.fsType} reports the anonymous device ${m.majorMinor}; followed its mount source ${m.source}`,
        };
      }
    }
    return none(`${m.fsType} from ${m.source} is not on a block device (device ${m.majorMinor})`, m);
  }

  const link = join(sys, 'dev', 'block', m.majorMinor);
  let target: string;
  try {
    target = readlinkSync(link);
  } catch (err) {
    return none(`no block device in sysfs for ${m.majorMinor} (${link}: ${errText(err)})`, m);
  }
  const name = basename(target);
  if (!name || name === '.' || name === '..') return none(`${link} points to ${target}, not to a block device`, m);
  return { path: real, mountPoint: m.mountPoint, majorMinor: m.majorMinor, fsType: m.fsType, source: m.source, device: name, sysPath: resolve(dirname(link), target) };
}

interface Verdict {
  encrypted: boolean;
  cryptUuid?: string;
  /** How the device stacks, e.g. 'dm-1 (LVM) on dm-0 (dm-crypt CRYPT-LUKS2-…)'. */
  text: string;
}

function dmKind(uuid: string): string {
  if (!uuid) return 'device-mapper, no uuid';
  const prefix = uuid.split('-')[0]!;
  if (prefix === 'LVM') return 'LVM';
  if (prefix === 'mpath') return 'multipath';
  if (prefix === 'CRYPT') return `cryptsetup ${uuid.split('-')[1] ?? ''}, not encryption`;
  return `device-mapper ${prefix}`;
}

function classify(sys: string, name: string, linkDir: string | undefined, chain: string[], seen: Set<string>, depth: number): Verdict {
  chain.push(name);
  if (seen.has(name)) return { encrypted: false, text: `${name} (seen before: a loop in sysfs)` };
  seen.add(name);
  if (depth > MAX_DEPTH) return { encrypted: false, text: `${name} (more than ${MAX_DEPTH} layers deep; not followed)` };
  const dir = deviceDir(sys, name, linkDir);
  if (!dir) return { encrypted: false, text: `${name} (no sysfs directory)` };

  const uuid = readTrim(join(dir, 'dm', 'uuid'));
  if (uuid !== null && uuid.startsWith('CRYPT-') && !NOT_ENCRYPTING.has(uuid.split('-')[1] ?? '')) {
    return { encrypted: true, cryptUuid: uuid, text: `${name} (dm-crypt ${uuid})` };
  }
  const label = uuid !== null ? `${name} (${dmKind(uuid)})` : existsSync(join(dir, 'md')) ? `${name} (md RAID)` : name;

  let slaves: string[] = [];
  try {
    slaves = readdirSync(join(dir, 'slaves')).sort();
  } catch {
    slaves = [];
  }
  if (slaves.length > 0) {
    const under = slaves.map((s) => classify(sys, s, join(dir, 'slaves', s), chain, seen, depth + 1));
    const encrypted = under.every((v) => v.encrypted);
    const cryptUuid = under.find((v) => v.cryptUuid)?.cryptUuid;
    const text = `${label} on ${under.length === 1 ? under[0]!.text : `[${under.map((v) => v.text).join(', ')}]`}`;
    return cryptUuid ? { encrypted, cryptUuid, text } : { encrypted, text };
  }

  if (existsSync(join(dir, 'partition'))) {
    let parent: string | null = null;
    try {
      parent = basename(dirname(realpathSync(dir)));
    } catch {
      parent = null;
    }
    if (parent && parent !== 'block') {
      const v = classify(sys, parent, undefined, chain, seen, depth + 1);
      return { ...v, text: `${name} (partition) of ${v.text}` };
    }
    return { encrypted: false, text: `${name} (partition)` };
  }

  if (uuid !== null) return { encrypted: false, text: `${label}, no dm-crypt under it` };
  const backing = readTrim(join(dir, 'loop', 'backing_file'));
  if (backing) return { encrypted: false, text: `${name} (loop device on the file ${backing})` };
  return { encrypted: false, text: `${name} (disk)` };
}

/** Is `path` on a dm-crypt (LUKS) volume? Never throws. */
export function checkEncryptedDisk(path: string, opts: EncryptedDiskOptions = {}): EncryptedDiskResult {
  try {
    const b = findBackingDevice(path, opts);
    const where = b.mountPoint ? `mount ${b.mountPoint} (${b.fsType} from ${b.source})` : 'no mount';
    if (b.device === null) {
      return {
        encrypted: false,
        mountPoint: b.mountPoint,
        device: b.majorMinor,
        chain: [],
        reason: `${b.path} is NOT on an encrypted disk: ${where}: ${b.reason ?? 'no block device'}. ${FIX}`,
      };
    }
    const chain: string[] = [];
    const v = classify(opts?.sysRoot ?? '/sys', b.device, b.sysPath, chain, new Set(), 0);
    const note = b.reason ? ` (${b.reason})` : '';
    if (v.encrypted) {
      const r: EncryptedDiskResult = {
        encrypted: true,
        mountPoint: b.mountPoint,
        device: b.device,
        chain,
        reason: `${b.path} is on an encrypted disk: ${where}${note} is on ${v.text}`,
      };
      if (v.cryptUuid) r.cryptUuid = v.cryptUuid;
      return r;
    }
    const partly = v.cryptUuid ? ' (part of it is dm-crypt, part is not)' : ' with no dm-crypt (LUKS) layer';
    return {
      encrypted: false,
      mountPoint: b.mountPoint,
      device: b.device,
      chain,
      reason: `${b.path} is NOT on an encrypted disk: ${where}${note} is on ${v.text}${partly}. ${FIX}`,
    };
  } catch (err) {
    return {
      encrypted: false,
      mountPoint: '',
      device: '',
      chain: [],
      reason: `could not tell whether ${String(path)} is on an encrypted disk (${errText(err)}). ${FIX}`,
    };
  }
}
