import t, { type Test } from 'tap';
import { execFile, execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, realpathSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { checkEncryptedDisk, findBackingDevice, parseMountinfo, type EncryptedDiskResult } from '../daemon/ops/encryptedDisk.js';

const run = promisify(execFile);
const SCRIPT = fileURLToPath(new URL('../../scripts/setup-encrypted-volume.sh', import.meta.url));

const tmp = mkdtempSync(join(tmpdir(), 'callrec-encdisk-'));
t.teardown(() => rmSync(tmp, { recursive: true, force: true }));

// ---- a fake /sys laid out as the kernel lays it out -------------------------------------------

const LUKS_UUID = 'CRYPT-LUKS2-3f0c9a5e1b2d4c6e8f0a1b2c3d4e5f60-sda3_crypt';
const LVM_ROOT_UUID = 'LVM-Xq3bZk1d0qYc0q8H1Zb7vU2nYp2vWm1kR8eUq5fNnq3Z0b8wJ6yTgG1c2dP9sXyZ';

class FakeSys {
  readonly root: string;
  /** device name -> its directory under devices/ */
  private dirs = new Map<string, string>();
  constructor(root: string) {
    this.root = root;
    for (const d of ['block', 'class/block', 'dev/block', 'devices/virtual/block']) mkdirSync(join(root, d), { recursive: true });
  }
  private link(from: string, toDir: string): void {
    mkdirSync(dirname(from), { recursive: true });
    symlinkSync(relative(dirname(from), toDir), from);
  }
  private register(name: string, dir: string, majMin: string, inBlock: boolean): void {
    mkdirSync(dir, { recursive: true });
    writeFileSync(join(dir, 'dev'), majMin + '\n');
    this.dirs.set(name, dir);
    this.link(join(this.root, 'dev/block', majMin), dir);
    this.link(join(this.root, 'class/block', name), dir);
    if (inBlock) this.link(join(this.root, 'block', name), dir);
  }
  /** A SATA disk and its partitions: devices/pci…/block/sda/sda2 with a `partition` file. */
  disk(name: string, major: number, parts: number[] = []): this {
    const dir = join(this.root, 'devices/pci0000:00/0000:00:1f.2/ata1/host0/target0:0:0/0:0:0:0/block', name);
    this.register(name, dir, `${major}:0`, true);
    mkdirSync(join(dir, 'slaves'));
    mkdirSync(join(dir, 'holders'));
    for (const n of parts) {
      const pdir = join(dir, `${name}${n}`);
      this.register(`${name}${n}`, pdir, `${major}:${n}`, false);
      writeFileSync(join(pdir, 'partition'), `${n}\n`);
    }
    return this;
  }
  /** A device-mapper device dm-N (major 254) with dm/uuid and slaves/ links. */
  dm(n: number, uuid: string | null, slaves: string[]): this {
    const name = `dm-${n}`;
    const dir = join(this.root, 'devices/virtual/block', name);
    this.register(name, dir, `254:${n}`, true);
    mkdirSync(join(dir, 'dm'));
    if (uuid !== null) writeFileSync(join(dir, 'dm', 'uuid'), uuid + '\n');
    writeFileSync(join(dir, 'dm', 'name'), `name-${n}\n`);
    mkdirSync(join(dir, 'slaves'));
    mkdirSync(join(dir, 'holders'));
    for (const s of slaves) {
      const sdir = this.dirs.get(s);
      if (!sdir) throw new Error(`fixture: no device ${s}`);
      this.link(join(dir, 'slaves', s), sdir);
    }
    return this;
  }
  /** A /sys/dev/block entry whose device directory is gone. */
  dangling(majMin: string, name: string): this {
    this.link(join(this.root, 'dev/block', majMin), join(this.root, 'devices/virtual/block', name));
    return this;
  }
}

let n = 0;
function sysTree(): FakeSys {
  return new FakeSys(join(tmp, `sys${++n}`));
}

/** One mountinfo line, as the kernel writes it. */
function mi(id: number, majMin: string, mountPoint: string, fsType: string, source: string, root = '/', optional = 'shared:1'): string {
  return `${id} 1 ${majMin} ${root} ${mountPoint} rw,relatime ${optional} - ${fsType} ${source} rw`;
}
const PROC = [mi(22, '0:21', '/proc', 'proc', 'proc'), mi(23, '0:22', '/sys', 'sysfs', 'sysfs'), mi(24, '0:6', '/dev', 'devtmpfs', 'udev')];
function mountinfo(...lines: string[]): string {
  return [...PROC, ...lines].join('\n') + '\n';
}
const identity = (p: string): string => p;

function wellFormed(t: Test, r: EncryptedDiskResult): void {
  t.type(r.encrypted, 'boolean');
  t.type(r.mountPoint, 'string');
  t.type(r.device, 'string');
  t.ok(Array.isArray(r.chain) && r.chain.every((c) => typeof c === 'string'), 'chain is a list of names');
  t.type(r.reason, 'string');
  t.ok(r.reason.length > 0, 'reason is not empty');
  if (!r.encrypted) {
    t.match(r.reason, /scripts\/setup-encrypted-volume\.sh/, 'the reason names the setup script');
    t.match(r.reason, /docs\/security\.md/, 'the reason names docs/security.md');
  }
}

// Debian guided install, "encrypted LVM": sda1 /boot/efi, sda2 /boot, sda3 LUKS2 -> dm-0 -> VG -> dm-1 root, dm-2 swap.
// A second disk sdb: sdb1 is a plain LVM PV (dm-3 LVM without LUKS) and sdb2 a plain ext4 partition.
const sys = sysTree()
  .disk('sda', 8, [1, 2, 3])
  .dm(0, LUKS_UUID, ['sda3'])
  .dm(1, LVM_ROOT_UUID, ['dm-0'])
  .dm(2, 'LVM-Xq3bZk1d0qYc0q8H1Zb7vU2nYp2vWm1kSWAPSWAPSWAPSWAPSWAPSWAPSWAP', ['dm-0']);
const sys2 = sysTree().disk('sdb', 8, [1, 2]).disk('sdc', 65, [1]).dm(3, 'LVM-plainplainplainplainplainplainVGplainplainplainplainplainplainLV', ['sdb1']);
const opts = (mountinfoText: string, sysRoot = sys.root) => ({ mountinfo: mountinfoText, sysRoot, realpath: identity });

t.test('parseMountinfo: fields, optional fields, octal escapes', async (t) => {
  const m = parseMountinfo(
    [
      '36 35 98:0 /mnt1 /mnt2 rw,noatime master:1 - ext3 /dev/root rw,errors=continue',
      '40 27 254:1 / /srv/call\\040data rw,relatime - ext4 /dev/mapper/vg-call\\134x rw',
      '41 27 254:1 / /x rw shared:2 master:3 propagate_from:4 - ext4 /dev/dm-1 rw',
      'garbage',
      '',
      '42 27 nope / /y rw - ext4 /dev/sda1 rw',
    ].join('\n'),
  );
  t.same(m, [
    { majorMinor: '98:0', root: '/mnt1', mountPoint: '/mnt2', fsType: 'ext3', source: '/dev/root' },
    { majorMinor: '254:1', root: '/', mountPoint: '/srv/call data', fsType: 'ext4', source: '/dev/mapper/vg-call\\x' },
    { majorMinor: '254:1', root: '/', mountPoint: '/x', fsType: 'ext4', source: '/dev/dm-1' },
  ]);
});

t.test('plain LUKS: the data directory on its own LUKS2 volume (dm-0 CRYPT-LUKS2-…)', async (t) => {
  const info = mountinfo(mi(27, '8:2', '/', 'ext4', '/dev/sda2'), mi(40, '254:0', '/var/lib/callrec', 'ext4', '/dev/mapper/callrec_data'));
  const r = checkEncryptedDisk('/var/lib/callrec/2025/06', opts(info));
  wellFormed(t, r);
  t.equal(r.encrypted, true);
  t.equal(r.mountPoint, '/var/lib/callrec');
  t.equal(r.device, 'dm-0');
  t.same(r.chain, ['dm-0']);
  t.equal(r.cryptUuid, LUKS_UUID);
  t.match(r.reason, /is on an encrypted disk/);
  t.match(r.reason, /dm-crypt CRYPT-LUKS2-/);
  t.same(findBackingDevice('/var/lib/callrec', opts(info)), {
    path: '/var/lib/callrec',
    mountPoint: '/var/lib/callrec',
    majorMinor: '254:0',
    fsType: 'ext4',
    source: '/dev/mapper/callrec_data',
    device: 'dm-0',
    sysPath: join(sys.root, 'devices/virtual/block/dm-0'),
  });
});

t.test('LVM on LUKS, as the Debian installer makes it: dm-1 LVM-… on dm-0 CRYPT-LUKS2-…', async (t) => {
  const info = mountinfo(mi(27, '254:1', '/', 'ext4', '/dev/mapper/debian--vg-root'), mi(28, '8:2', '/boot', 'ext2', '/dev/sda2'));
  const r = checkEncryptedDisk('/var/lib/callrec', opts(info));
  wellFormed(t, r);
  t.equal(r.encrypted, true);
  t.equal(r.mountPoint, '/');
  t.equal(r.device, 'dm-1');
  t.same(r.chain, ['dm-1', 'dm-0']);
  t.equal(r.cryptUuid, LUKS_UUID);
  t.match(r.reason, /dm-1 \(LVM\) on dm-0 \(dm-crypt CRYPT-LUKS2-/);
  // /boot next to it is not encrypted
  const boot = checkEncryptedDisk('/boot/grub', opts(info));
  t.equal(boot.encrypted, false);
  t.equal(boot.device, 'sda2');
});

t.test('plain partition (sda2): not encrypted, and says how to fix it', async (t) => {
  const info = mountinfo(mi(27, '8:2', '/', 'ext4', '/dev/sda2'));
  const r = checkEncryptedDisk('/var/lib/callrec', opts(info));
  wellFormed(t, r);
  t.equal(r.encrypted, false);
  t.equal(r.mountPoint, '/');
  t.equal(r.device, 'sda2');
  t.same(r.chain, ['sda2', 'sda'], 'a partition is followed to its disk');
  t.equal(r.cryptUuid, undefined);
  t.match(r.reason, /NOT on an encrypted disk/);
  t.match(r.reason, /sda2 \(partition\) of sda \(disk\)/);
  // a whole disk without partitions
  const whole = checkEncryptedDisk('/data', opts(mountinfo(mi(27, '8:0', '/', 'ext4', '/dev/sda'))));
  t.equal(whole.encrypted, false);
  t.same(whole.chain, ['sda']);
});

t.test('LVM without LUKS: dm-3 LVM-… on a plain partition', async (t) => {
  const info = mountinfo(mi(27, '8:2', '/', 'ext4', '/dev/sdb2'), mi(40, '254:3', '/var/lib/callrec', 'xfs', '/dev/mapper/vg-callrec'));
  const r = checkEncryptedDisk('/var/lib/callrec', opts(info, sys2.root));
  wellFormed(t, r);
  t.equal(r.encrypted, false);
  t.equal(r.device, 'dm-3');
  t.same(r.chain, ['dm-3', 'sdb1', 'sdb']);
  t.match(r.reason, /dm-3 \(LVM\) on sdb1 \(partition\) of sdb/);
});

t.test('LVM spanning a LUKS volume and a plain disk is not encrypted', async (t) => {
  const s = sysTree().disk('sda', 8, [3]).disk('sdb', 16, [1]).dm(0, LUKS_UUID, ['sda3']).dm(4, 'LVM-spanningspanningspanning', ['dm-0', 'sdb1']);
  const r = checkEncryptedDisk('/var/lib/callrec', opts(mountinfo(mi(27, '254:4', '/', 'ext4', '/dev/mapper/vg-root')), s.root));
  wellFormed(t, r);
  t.equal(r.encrypted, false);
  t.same(r.chain, ['dm-4', 'dm-0', 'sdb1', 'sdb'], 'every slave followed; a crypt layer ends its branch');
  t.match(r.reason, /part of it is dm-crypt, part is not/);
});

t.test('dm-verity and the dm-integrity under LUKS2 --integrity do not count as encryption', async (t) => {
  const s = sysTree()
    .disk('sda', 8, [1, 2])
    .dm(0, 'CRYPT-VERITY-0123456789abcdef0123456789abcdef-usr', ['sda1'])
    .dm(1, 'CRYPT-SUBDEV-0123456789abcdef0123456789abcdef-data_dif', ['sda2'])
    .dm(2, 'CRYPT-LUKS2-0123456789abcdef0123456789abcdef-data', ['dm-1'])
    .dm(3, 'CRYPT-PLAIN-0123456789abcdef0123456789abcdef-plain', ['sda2']);
  const verity = checkEncryptedDisk('/usr/x', opts(mountinfo(mi(27, '254:0', '/usr', 'erofs', '/dev/mapper/usr')), s.root));
  t.equal(verity.encrypted, false);
  t.match(verity.reason, /VERITY, not encryption/);
  const authenticated = checkEncryptedDisk('/d', opts(mountinfo(mi(27, '254:2', '/d', 'ext4', '/dev/mapper/data')), s.root));
  t.equal(authenticated.encrypted, true, 'LUKS2 with integrity: the crypt layer on top counts');
  t.same(authenticated.chain, ['dm-2']);
  const plain = checkEncryptedDisk('/p', opts(mountinfo(mi(27, '254:3', '/p', 'ext4', '/dev/mapper/plain')), s.root));
  t.equal(plain.encrypted, true, 'plain dm-crypt is encryption');
});

t.test('tmpfs (major 0): not encrypted, device is major:minor', async (t) => {
  const info = mountinfo(mi(27, '254:1', '/', 'ext4', '/dev/mapper/debian--vg-root'), mi(45, '0:45', '/var/lib/callrec', 'tmpfs', 'tmpfs'));
  const r = checkEncryptedDisk('/var/lib/callrec', opts(info));
  wellFormed(t, r);
  t.equal(r.encrypted, false);
  t.equal(r.mountPoint, '/var/lib/callrec');
  t.equal(r.device, '0:45');
  t.same(r.chain, []);
  t.match(r.reason, /tmpfs from tmpfs is not on a block device \(device 0:45\)/);
  const b = findBackingDevice('/var/lib/callrec', opts(info));
  t.equal(b.device, null);
  t.equal(b.majorMinor, '0:45');
});

t.test('a mount point with a space (\\040)', async (t) => {
  const info = mountinfo(mi(27, '8:2', '/', 'ext4', '/dev/sda2'), mi(40, '254:1', '/srv/call\\040data', 'ext4', '/dev/mapper/vg-calls'));
  const r = checkEncryptedDisk('/srv/call data/recordings', opts(info));
  wellFormed(t, r);
  t.equal(r.encrypted, true);
  t.equal(r.mountPoint, '/srv/call data');
  t.same(r.chain, ['dm-1', 'dm-0']);
  const beside = checkEncryptedDisk('/srv/call database', opts(info));
  t.equal(beside.mountPoint, '/', 'a mount point is a prefix by whole path components only');
  t.equal(beside.encrypted, false);
});

t.test('nested mounts: the longest mount point prefix wins', async (t) => {
  const info = mountinfo(
    mi(27, '8:2', '/', 'ext4', '/dev/sda2'),
    mi(40, '254:1', '/var', 'ext4', '/dev/mapper/vg-var'),
    mi(41, '0:50', '/var/lib/callrec/tmp', 'tmpfs', 'tmpfs'),
    mi(42, '8:1', '/var/lib', 'vfat', '/dev/sda1'),
    mi(43, '254:0', '/var/lib/callrec', 'ext4', '/dev/mapper/callrec_data'),
  );
  const cases: Array<[string, string, boolean, string]> = [
    ['/var/lib/callrec', '/var/lib/callrec', true, 'dm-0'],
    ['/var/lib/callrec/2025', '/var/lib/callrec', true, 'dm-0'],
    ['/var/lib/callrec/tmp/x', '/var/lib/callrec/tmp', false, '0:50'],
    ['/var/lib/other', '/var/lib', false, 'sda1'],
    ['/var/log', '/var', true, 'dm-1'],
    ['/variable', '/', false, 'sda2'],
    ['/', '/', false, 'sda2'],
  ];
  for (const [path, mp, enc, dev] of cases) {
    const r = checkEncryptedDisk(path, opts(info));
    t.equal(r.mountPoint, mp, `${path}: mount ${mp}`);
    t.equal(r.encrypted, enc, `${path}: encrypted ${enc}`);
    t.equal(r.device, dev, `${path}: device ${dev}`);
  }
  // two mounts on one point: the later one is the visible one
  const over = mountinfo(mi(27, '8:2', '/', 'ext4', '/dev/sda2'), mi(40, '8:2', '/data', 'ext4', '/dev/sda2'), mi(41, '254:0', '/data', 'ext4', '/dev/mapper/callrec_data'));
  t.equal(checkEncryptedDisk('/data/x', opts(over)).device, 'dm-0');
});

t.test('a path under a bind mount or an overlay', async (t) => {
  // bind mount of /srv/encrypted/callrec (on dm-1) onto /var/lib/callrec: the same major:minor, root /srv/...
  const bind = mountinfo(
    mi(27, '8:2', '/', 'ext4', '/dev/sda2'),
    mi(40, '254:1', '/srv/encrypted', 'ext4', '/dev/mapper/vg-srv'),
    mi(41, '254:1', '/var/lib/callrec', 'ext4', '/dev/mapper/vg-srv', '/callrec'),
  );
  const r = checkEncryptedDisk('/var/lib/callrec/2025', opts(bind));
  wellFormed(t, r);
  t.equal(r.encrypted, true);
  t.equal(r.mountPoint, '/var/lib/callrec');
  t.same(r.chain, ['dm-1', 'dm-0']);
  // a bind of a plain directory of the root filesystem is not encrypted
  const plainBind = mountinfo(mi(27, '8:2', '/', 'ext4', '/dev/sda2'), mi(41, '8:2', '/var/lib/callrec', 'ext4', '/dev/sda2', '/srv/callrec'));
  t.equal(checkEncryptedDisk('/var/lib/callrec', opts(plainBind)).encrypted, false);
  // an overlay (a container's root): major 0, not a block device
  const overlay = mountinfo(
    '500 450 0:60 / / rw,relatime - overlay overlay rw,lowerdir=/var/lib/docker/overlay2/l/ABC,upperdir=/var/lib/docker/overlay2/x/diff,workdir=/var/lib/docker/overlay2/x/work',
  );
  const o = checkEncryptedDisk('/var/lib/callrec', opts(overlay));
  wellFormed(t, o);
  t.equal(o.encrypted, false);
  t.equal(o.device, '0:60');
  t.match(o.reason, /overlay from overlay is not on a block device/);
});

t.test('btrfs reports 0:N; its mount source is followed', async (t) => {
  const info = mountinfo(mi(27, '0:35', '/', 'btrfs', '/dev/mapper/luks-3f0c9a5e', '/@root'));
  const rp = (p: string): string => (p === '/dev/mapper/luks-3f0c9a5e' ? '/dev/dm-0' : p);
  const r = checkEncryptedDisk('/var/lib/callrec', { mountinfo: info, sysRoot: sys.root, realpath: rp });
  wellFormed(t, r);
  t.equal(r.encrypted, true);
  t.equal(r.device, 'dm-0');
  t.match(r.reason, /followed its mount source/);
  // a source that cannot be resolved: not encrypted, no throw
  const lost = checkEncryptedDisk('/x', { mountinfo: info, sysRoot: sys.root, realpath: () => { throw new Error('ENOENT'); } });
  t.equal(lost.encrypted, false);
  t.equal(lost.device, '0:35');
});

t.test('a missing sysfs entry', async (t) => {
  const s = sysTree().disk('sda', 8, [2]).dangling('254:7', 'dm-7');
  const noLink = checkEncryptedDisk('/var/lib/callrec', opts(mountinfo(mi(27, '259:9', '/', 'ext4', '/dev/nvme0n1p2')), s.root));
  wellFormed(t, noLink);
  t.equal(noLink.encrypted, false);
  t.equal(noLink.device, '259:9');
  t.match(noLink.reason, /no block device in sysfs for 259:9/);
  const dangling = checkEncryptedDisk('/var/lib/callrec', opts(mountinfo(mi(27, '254:7', '/', 'ext4', '/dev/mapper/gone')), s.root));
  wellFormed(t, dangling);
  t.equal(dangling.encrypted, false);
  t.equal(dangling.device, 'dm-7');
  t.match(dangling.reason, /dm-7 \(no sysfs directory\)/);
  // a dm device without a uuid file and without slaves
  const bare = sysTree().dm(5, null, []);
  const b = checkEncryptedDisk('/', opts(mountinfo(mi(27, '254:5', '/', 'ext4', '/dev/dm-5')), bare.root));
  t.equal(b.encrypted, false);
  t.same(b.chain, ['dm-5']);
  // a sysfs with only /sys/dev/block and /sys/devices: the links are followed
  const sparse = sysTree().disk('sda', 8, [3]).dm(0, LUKS_UUID, ['sda3']).dm(1, LVM_ROOT_UUID, ['dm-0']);
  rmSync(join(sparse.root, 'block'), { recursive: true });
  rmSync(join(sparse.root, 'class'), { recursive: true });
  const viaDev = checkEncryptedDisk('/', opts(mountinfo(mi(27, '254:1', '/', 'ext4', '/dev/dm-1')), sparse.root));
  t.equal(viaDev.encrypted, true);
  t.same(viaDev.chain, ['dm-1', 'dm-0']);
  // no sysfs at all
  const none = checkEncryptedDisk('/', opts(mountinfo(mi(27, '254:0', '/', 'ext4', '/dev/dm-0')), join(tmp, 'no-such-sys')));
  t.equal(none.encrypted, false);
  t.match(none.reason, /no block device in sysfs/);
});

t.test('odd input never throws', async (t) => {
  const odd: Array<[string, Parameters<typeof checkEncryptedDisk>[1]]> = [
    ['/var/lib/callrec', { mountinfo: '', sysRoot: sys.root, realpath: identity }],
    ['/var/lib/callrec', { mountinfo: 'not\na\nmountinfo\n\u0000', sysRoot: sys.root, realpath: identity }],
    ['', { mountinfo: mountinfo(mi(27, '254:1', '/', 'ext4', '/dev/dm-1')), sysRoot: sys.root }],
    ['relative/dir', { mountinfo: mountinfo(mi(27, '254:1', '/', 'ext4', '/dev/dm-1')), sysRoot: sys.root }],
    ['/x', { mountinfo: mountinfo(mi(27, '254:1', '/', 'ext4', '/dev/dm-1')), sysRoot: '', realpath: identity }],
    ['/x', { mountinfo: mountinfo(mi(27, '254:1', '/', 'ext4', '/dev/dm-1')), sysRoot: sys.root, realpath: () => { throw new Error('boom'); } }],
    [undefined as unknown as string, { mountinfo: undefined as unknown as string, sysRoot: sys.root }],
    [42 as unknown as string, { mountinfo: 42 as unknown as string, sysRoot: sys.root }],
  ];
  for (const [path, o] of odd) {
    let r: EncryptedDiskResult | undefined;
    t.doesNotThrow(() => {
      r = checkEncryptedDisk(path, o);
    }, `${JSON.stringify(path)} ${JSON.stringify(o?.mountinfo)?.slice(0, 30)}`);
    if (r) wellFormed(t, r);
  }
  const empty = checkEncryptedDisk('/var/lib/callrec', { mountinfo: '', sysRoot: sys.root, realpath: identity });
  t.equal(empty.encrypted, false);
  t.equal(empty.mountPoint, '');
  t.match(empty.reason, /no mount in mountinfo/);
  // a slaves loop in a broken sysfs does not recurse for ever
  const loop = sysTree().dm(8, 'LVM-a', []);
  symlinkSync('../../dm-8', join(loop.root, 'devices/virtual/block/dm-8/slaves/dm-8'));
  const l = checkEncryptedDisk('/', opts(mountinfo(mi(27, '254:8', '/', 'ext4', '/dev/dm-8')), loop.root));
  t.equal(l.encrypted, false);
  t.same(l.chain, ['dm-8', 'dm-8']);
});

t.test('the real path is checked: symlinks resolved, a directory not made yet counts as its parent', async (t) => {
  const base = realpathSync(mkdtempSync(join(tmp, 'paths-')));
  mkdirSync(join(base, 'enc'));
  symlinkSync(join(base, 'enc'), join(base, 'link'));
  const info = mountinfo(mi(27, '8:2', '/', 'ext4', '/dev/sda2'), mi(40, '254:0', join(base, 'enc'), 'ext4', '/dev/mapper/callrec_data'));
  const viaLink = checkEncryptedDisk(join(base, 'link', 'not', 'made', 'yet'), { mountinfo: info, sysRoot: sys.root });
  t.equal(viaLink.encrypted, true);
  t.equal(viaLink.mountPoint, join(base, 'enc'));
  t.equal(findBackingDevice(join(base, 'link', 'x'), { mountinfo: info, sysRoot: sys.root }).path, join(base, 'enc', 'x'));
  t.equal(checkEncryptedDisk(join(base, 'other'), { mountinfo: info, sysRoot: sys.root }).encrypted, false);
});

t.test('this machine: a well-formed answer, whatever it is', async (t) => {
  const r = checkEncryptedDisk(process.cwd());
  wellFormed(t, r);
  t.ok(r.mountPoint.startsWith('/'), `mount point ${r.mountPoint}`);
  if (r.encrypted) t.match(r.cryptUuid, /^CRYPT-/);
  t.comment(r.reason);
  const b = findBackingDevice(process.cwd());
  t.equal(b.mountPoint, r.mountPoint);
});

// ---- scripts/setup-encrypted-volume.sh ----------------------------------------------------------

async function script(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  try {
    const r = await run('bash', [SCRIPT, ...args], { env: { ...process.env, LC_ALL: 'C' } });
    return { code: 0, stdout: r.stdout, stderr: r.stderr };
  } catch (err) {
    const e = err as { code: number; stdout: string; stderr: string };
    return { code: e.code, stdout: e.stdout, stderr: e.stderr };
  }
}

const NO_DEVICE = '/dev/callrec-test-device-that-does-not-exist';

t.test('setup script: --help', async (t) => {
  const r = await script(['--help']);
  t.equal(r.code, 0, r.stderr);
  t.match(r.stdout, /Usage: setup-encrypted-volume\.sh \[options\] DEVICE \[MOUNTPOINT\]/);
  t.match(r.stdout, /--dry-run/);
  t.match(r.stdout, /--force/);
  t.match(r.stdout, /default \/var\/lib\/callrec/);
});

t.test('setup script: --dry-run prints the commands and changes nothing (the device need not exist)', async (t) => {
  const mp = join(tmp, 'mnt-dry', 'callrec');
  const r = await script(['--dry-run', NO_DEVICE, mp]);
  t.equal(r.code, 0, r.stderr);
  t.match(r.stderr, /does not exist; the checks on it .* are skipped/);
  const uuid = /^\+ cryptsetup luksFormat --type luks2 --uuid ([0-9a-f-]{36}) (\S+)$/m.exec(r.stdout);
  t.ok(uuid, 'luksFormat --type luks2 with a fixed uuid');
  t.equal(uuid?.[2], NO_DEVICE);
  t.match(r.stdout, new RegExp(`^\\+ cryptsetup open --type luks2 ${NO_DEVICE} callrec_data$`, 'm'));
  t.match(r.stdout, /^\+ mkfs\.ext4 -L callrec_data \/dev\/mapper\/callrec_data$/m);
  t.match(r.stdout, new RegExp(`^\\+ append to /etc/crypttab: callrec_data UUID=${uuid?.[1]} none luks,nofail$`, 'm'), 'crypttab by UUID');
  t.match(
    r.stdout,
    new RegExp(`^\\+ append to /etc/fstab: /dev/mapper/callrec_data ${mp} ext4 \\S*nofail\\S*,x-systemd\\.requires=systemd-cryptsetup@callrec_data\\.service 0 2$`, 'm'),
    'fstab line',
  );
  t.match(r.stdout, new RegExp(`^\\+ mount ${mp}$`, 'm'));
  t.match(r.stdout, new RegExp(`^\\+ chown callrec:callrec ${mp}$`, 'm'));
  t.match(r.stdout, new RegExp(`^\\+ chmod 0750 ${mp}$`, 'm'));
  t.match(r.stdout, /systemd-cryptenroll --tpm2-device=auto/, 'tells the operator about TPM2');
  t.match(r.stdout, /luksHeaderBackup/, 'tells the operator to back up the header');
  // the order: format, open, mkfs, crypttab, fstab, mount, chown
  const order = ['luksFormat', 'cryptsetup open', 'mkfs.ext4', 'append to /etc/crypttab', 'append to /etc/fstab', '+ mount', '+ chown'].map((s) => r.stdout.indexOf(s));
  t.same([...order].sort((a, b) => a - b), order, 'steps in order');
  t.notOk(existsSync(mp), 'dry run made no directory');
  t.notOk(existsSync(dirname(mp)), 'dry run made no parent directory');

  const def = await script(['-n', NO_DEVICE]);
  t.equal(def.code, 0, def.stderr);
  t.match(def.stdout, /^\+ append to \/etc\/fstab: \/dev\/mapper\/callrec_data \/var\/lib\/callrec ext4 /m, 'default mount point');
});

t.test('setup script: --key-file goes into luksFormat, open and crypttab', async (t) => {
  const r = await script(['--dry-run', '--key-file', '/etc/callrec/luks.key', NO_DEVICE, join(tmp, 'mnt-key')]);
  t.equal(r.code, 0, r.stderr);
  t.match(r.stdout, /^\+ cryptsetup luksFormat --type luks2 --uuid \S+ --key-file \/etc\/callrec\/luks\.key /m);
  t.match(r.stdout, /^\+ cryptsetup open --type luks2 --key-file \/etc\/callrec\/luks\.key /m);
  t.match(r.stdout, /^\+ append to \/etc\/crypttab: callrec_data UUID=\S+ \/etc\/callrec\/luks\.key luks,nofail$/m);
});

t.test('setup script: refusals', async (t) => {
  const noArgs = await script([]);
  t.equal(noArgs.code, 2);
  t.match(noArgs.stderr, /Usage:/);
  t.equal((await script(['--bogus', NO_DEVICE])).code, 1);
  const rel = await script(['--dry-run', 'sdb']);
  t.equal(rel.code, 1);
  t.match(rel.stderr, /must be an absolute path/);
  const spaced = await script(['--dry-run', NO_DEVICE, '/srv/call data']);
  t.equal(spaced.code, 1);
  t.match(spaced.stderr, /fstab would need escaped/);
  const tooMany = await script(['--dry-run', NO_DEVICE, '/a', '/b']);
  t.equal(tooMany.code, 1);
  // a mount point that already holds files: their unencrypted copies would only be hidden
  const full = join(tmp, 'mnt-full');
  mkdirSync(full);
  writeFileSync(join(full, 'old.ogg'), 'x');
  const refused = await script(['--dry-run', NO_DEVICE, full]);
  t.equal(refused.code, 1);
  t.match(refused.stderr, /a real run would refuse: .*is not empty/);
  t.notMatch(refused.stdout, /luksFormat/, 'nothing printed as run before the refusal');
  const forced = await script(['--dry-run', '--force', NO_DEVICE, full]);
  t.equal(forced.code, 0, forced.stderr);
  t.match(forced.stderr, /going on: --force/);
  // a device that is not a block device
  const notBlock = await script(['--dry-run', join(full, 'old.ogg'), join(tmp, 'mnt-nb')]);
  t.equal(notBlock.code, 1);
  t.match(notBlock.stderr, /is not a block device/);
});

t.test('every shell script in scripts/ is shellcheck-clean', async (t) => {
  try {
    execFileSync('shellcheck', ['--version'], { stdio: 'ignore' });
  } catch {
    throw new Error('shellcheck is missing: apt-get install shellcheck');
  }
  const dir = SCRIPT.slice(0, SCRIPT.lastIndexOf('/'));
  const scripts = readdirSync(dir).filter((f) => f.endsWith('.sh'));
  t.ok(scripts.length >= 5, scripts.join(', '));
  for (const f of scripts) {
    const r = await run('shellcheck', [`${dir}/${f}`]).then(
      (x) => ({ code: 0, out: x.stdout }),
      (e: { code: number; stdout: string }) => ({ code: e.code, out: e.stdout }),
    );
    t.equal(r.code, 0, `${f}: ${r.out}`);
  }
});
