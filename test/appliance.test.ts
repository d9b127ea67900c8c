/**
 * The appliance: the hardened unit (systemd-analyze security and verify), scripts/install.sh into a
 * throw-away root (modes, owners, idempotence, --dry-run), scripts/uninstall.sh, and the .deb from
 * scripts/build-deb.sh. Needs root (the scripts set owners) and the Debian packages systemd (for
 * systemd-analyze) and dpkg (dpkg-deb); a missing one fails the test and names its package.
 */
import t, { type Test } from 'tap';
import { spawnSync } from 'node:child_process';
import { cpSync, existsSync, linkSync, copyFileSync, lstatSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, readlinkSync, realpathSync, rmSync, statSync, symlinkSync, unlinkSync, writeFileSync, chmodSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { delimiter, dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

t.setTimeout(600_000);

/** The checkout: two folders above this file (dist/test/ or a separate outDir's test/), else the cwd. */
function findRepo(): string {
  const candidates = [fileURLToPath(new URL('../../', import.meta.url)), process.cwd()];
  for (const c of candidates) {
    if (existsSync(join(c, 'scripts/install.sh')) && existsSync(join(c, 'systemd/callrecd.service'))) return realpathSync(c);
  }
  throw new Error(`cannot find the callrec checkout (looked in ${candidates.join(', ')}): run from its top folder`);
}
const REPO = findRepo();
const UNIT = join(REPO, 'systemd/callrecd.service');
const script = (name: string): string => join(REPO, 'scripts', name);
const VERSION: string = JSON.parse(readFileSync(join(REPO, 'package.json'), 'utf8')).version;

const esc = (s: string): string => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
const onPath = (cmd: string): boolean => (process.env.PATH ?? '').split(delimiter).some((d) => d && existsSync(join(d, cmd)));
// systemd-analyze lives in /usr/bin on Debian; the shadow tools in /usr/sbin, which a non-login PATH may lack.
process.env.PATH = [process.env.PATH, '/usr/sbin', '/sbin'].filter(Boolean).join(delimiter);
const NEED_SYSTEMD = 'systemd-analyze is missing: install the Debian package `systemd` (apt-get install -y --no-install-recommends systemd)';
const NEED_DPKG = 'dpkg-deb is missing: install the Debian package `dpkg`';
const isRoot = process.getuid?.() === 0;
const NEED_ROOT = 'the install scripts set owners (root, callrec): run this test as root';

interface Run {
  status: number | null;
  out: string;
  err: string;
}
function run(cmd: string, args: string[], opts: { input?: string } = {}): Run {
  const r = spawnSync(cmd, args, { cwd: REPO, encoding: 'utf8', input: opts.input ?? '', maxBuffer: 64 * 1024 * 1024, env: { ...process.env, LC_ALL: 'C' } });
  if (r.error) throw r.error;
  return { status: r.status, out: r.stdout, err: r.stderr };
}
/** Runs and asserts exit 0; returns stdout. */
function ok(t: Test, cmd: string, args: string[], what: string): string {
  const r = run(cmd, args);
  t.equal(r.status, 0, `${what} exits 0`, { stdout: r.out.slice(-3000), stderr: r.err.slice(-3000) });
  return r.out;
}

/** Every entry under root with type, mode, owner, size, mtime and link target: any change shows. */
function listing(root: string): string[] {
  const out: string[] = [];
  const walk = (rel: string): void => {
    const p = join(root, rel);
    const s = lstatSync(p);
    const kind = s.isSymbolicLink() ? `l->${readlinkSync(p)}` : s.isDirectory() ? 'd' : 'f';
    out.push(`${rel || '.'} ${kind} ${(s.mode & 0o7777).toString(8)} ${s.uid}:${s.gid} ${s.isDirectory() ? '' : s.size} ${s.mtimeMs}`);
    if (s.isDirectory()) for (const e of readdirSync(p).sort()) walk(rel ? `${rel}/${e}` : e);
  };
  if (existsSync(root)) walk('');
  return out;
}

/** mode (octal string), uid, gid of a path. */
function meta(p: string): { mode: string; uid: number; gid: number } {
  const s = statSync(p);
  return { mode: (s.mode & 0o7777).toString(8), uid: s.uid, gid: s.gid };
}

/** An account's numeric id from a root's passwd or group file. */
function idIn(root: string, file: 'passwd' | 'group', name: string): number | null {
  const line = readFileSync(join(root, 'etc', file), 'utf8').split('\n').find((l) => l.split(':')[0] === name);
  return line ? Number(line.split(':')[2]) : null;
}

/** Hard-links (or copies) a host binary into root at the same path. */
function hostBinary(root: string, from: string, to: string): void {
  const src = realpathSync(from);
  const dst = join(root, to);
  mkdirSync(dirname(dst), { recursive: true });
  try {
    linkSync(src, dst);
  } catch {
    copyFileSync(src, dst);
    chmodSync(dst, 0o755);
  }
}

/**
 * A throw-away root that stands for the target machine before the install: systemd's own units (so
 * `verify --root` finds sysinit.target, basic.target, ...), the Node.js the unit runs at /usr/bin/node,
 * and kill for ExecReload, with Debian 12's merged /usr (bin -> usr/bin).
 */
function targetBase(root: string): void {
  for (const dir of ['/usr/lib/systemd/system', '/lib/systemd/system']) {
    if (existsSync(dir)) {
      cpSync(dir, join(root, 'usr/lib/systemd/system'), { recursive: true, verbatimSymlinks: true });
      break;
    }
  }
  hostBinary(root, existsSync('/usr/bin/node') ? '/usr/bin/node' : process.execPath, 'usr/bin/node');
  hostBinary(root, existsSync('/usr/bin/kill') ? '/usr/bin/kill' : '/bin/kill', 'usr/bin/kill');
  symlinkSync('usr/bin', join(root, 'bin'));
}

const tmp = mkdtempSync(join(tmpdir(), 'callrec-appliance-'));
t.teardown(() => rmSync(tmp, { recursive: true, force: true }));

// ---- the unit -----------------------------------------------------------------------------------

t.test('systemd-analyze security: overall exposure at most 1.5', async (t) => {
  if (!onPath('systemd-analyze')) return void t.fail(NEED_SYSTEMD);
  const r = run('systemd-analyze', ['security', '--offline=true', UNIT]);
  t.equal(r.status, 0, 'systemd-analyze security exits 0', { stderr: r.err });
  const m = /Overall exposure level for \S+: (\d+(?:\.\d+)?)/.exec(r.out);
  if (!m) return void t.fail('no "Overall exposure level" line', { stdout: r.out, stderr: r.err });
  const exposure = Number(m[1]);
  t.comment(`exposure ${exposure}`);
  t.ok(exposure <= 1.5, `exposure ${exposure} <= 1.5`, { stdout: r.out.split('\n').filter((l) => l.startsWith('✗')).join('\n') });
});

t.test('the unit keeps what the daemon needs', async (t) => {
  const text = readFileSync(UNIT, 'utf8');
  const set = (key: string): string[] =>
    text
      .split('\n')
      .filter((l) => l.startsWith(`${key}=`))
      .map((l) => l.slice(key.length + 1));
  t.same(set('ExecStart'), ['/usr/bin/node /opt/callrec/dist/daemon/bin/callrecd.js --config /etc/callrec/config.yaml']);
  t.same(set('ExecReload'), ['/bin/kill -HUP $MAINPID'], 'systemctl reload sends SIGHUP');
  t.same(set('Type'), ['notify']);
  t.same(set('NotifyAccess'), ['main'], 'sd_notify from the main process only');
  t.equal(set('WatchdogSec').length, 1, 'a watchdog');
  t.same(set('LoadCredentialEncrypted'), ['callrec-master:/etc/credstore.encrypted/callrec-master']);
  t.match(set('Environment').join(' '), /UV_THREADPOOL_SIZE=\d+/);
  t.same(set('WorkingDirectory'), ['/var/lib/callrec']);
  t.same(set('StateDirectory'), ['callrec']);
  t.same(set('RuntimeDirectory'), ['callrec']);
  t.same(set('User'), ['callrec']);
  t.same(set('SupplementaryGroups'), ['audio']);
  t.same(set('RequiresMountsFor'), ['/var/lib/callrec']);
  t.same(set('Restart'), ['on-failure']);
  t.same(set('PrivateUsers'), ['yes']);
  t.same(set('ProtectProc'), ['invisible']);
  t.match(set('DeviceAllow').join(' '), /char-alsa/);
  t.same(set('ProcSubset'), [], 'no ProcSubset=pid: systeminformation reads /proc/meminfo and /proc/stat');
  t.same(set('MemoryDenyWriteExecute'), [], "no MemoryDenyWriteExecute: V8's JIT");
  t.same(set('ProtectClock'), [], 'no ProtectClock: it would deny the read-only adjtimex');
  t.match(text, /# MemoryDenyWriteExecute=yes: V8/, 'the comment says why MemoryDenyWriteExecute is not set');
});

// ---- install.sh into a throw-away root ----------------------------------------------------------

const root = join(tmp, 'root');

t.test('install.sh --root: a staged install that systemd-analyze verify accepts', async (t) => {
  if (!isRoot) return void t.fail(NEED_ROOT);
  mkdirSync(root);
  targetBase(root);
  const hostPasswd = readFileSync('/etc/passwd', 'utf8');
  const out = ok(t, script('install.sh'), ['--root', root], 'install.sh --root');
  t.match(out, /done: \d+ change/);
  t.match(out, /systemd-creds encrypt --name=callrec-master/, 'a --root install prints the key command instead of running it');
  t.notOk(existsSync(join(root, 'etc/credstore.encrypted/callrec-master')), 'no key is made in a --root install');
  t.equal(readFileSync('/etc/passwd', 'utf8'), hostPasswd, "the host's /etc/passwd is untouched");

  // Accounts, in the staged root's own files.
  const uid = idIn(root, 'passwd', 'callrec');
  const gid = idIn(root, 'group', 'callrec');
  t.ok(uid !== null && uid > 0 && uid < 1000, `callrec is a system user (uid ${uid})`);
  t.ok(gid !== null && gid > 0, `group callrec (gid ${gid})`);
  const pw = readFileSync(join(root, 'etc/passwd'), 'utf8').split('\n').find((l) => l.startsWith('callrec:'))!;
  t.match(pw, /:\/var\/lib\/callrec:\/usr\/sbin\/nologin$/, 'home /var/lib/callrec, no login shell');
  const audio = readFileSync(join(root, 'etc/group'), 'utf8').split('\n').find((l) => l.startsWith('audio:'))!;
  t.ok(audio.split(':')[3]!.split(',').includes('callrec'), 'callrec is in the audio group');

  // Modes and owners.
  const expect: [string, string, number, number][] = [
    ['var/lib/callrec', '750', uid!, gid!],
    ['etc/callrec', '750', 0, gid!],
    ['etc/callrec/config.yaml', '640', 0, gid!],
    ['etc/credstore.encrypted', '700', 0, 0],
    ['etc/systemd/system/callrecd.service', '644', 0, 0],
    ['usr/bin/callrec', '755', 0, 0],
    ['usr/bin/callrecd', '755', 0, 0],
    ['opt/callrec', '755', 0, 0],
    ['opt/callrec/dist/daemon/bin/callrecd.js', '644', 0, 0],
  ];
  for (const [p, mode, u, g] of expect) t.same(meta(join(root, p)), { mode, uid: u, gid: g }, `${p} ${mode} ${u}:${g}`);
  t.equal(readFileSync(join(root, 'etc/callrec/config.yaml'), 'utf8'), readFileSync(join(REPO, 'config/callrec.example.yaml'), 'utf8'), 'config.yaml is the example');
  t.equal(readFileSync(join(root, 'etc/systemd/system/callrecd.service'), 'utf8'), readFileSync(UNIT, 'utf8'), 'the unit as in the repo');
  t.match(readFileSync(join(root, 'usr/bin/callrec'), 'utf8'), /exec \/usr\/bin\/node \/opt\/callrec\/dist\/daemon\/bin\/callrec\.js "\$@"/);
  t.match(readFileSync(join(root, 'usr/bin/callrecd'), 'utf8'), /exec \/usr\/bin\/node \/opt\/callrec\/dist\/daemon\/bin\/callrecd\.js "\$@"/);

  // The app: production dependencies only, and it runs from there.
  const nm = join(root, 'opt/callrec/node_modules');
  for (const dep of ['koffi', 'naudiodon', '@discordjs/opus', 'level', 'classic-level', 'systeminformation', 'ajv', 'yaml']) t.ok(existsSync(join(nm, dep)), `has ${dep}`);
  for (const dev of ['typescript', 'tap', '@types/node']) t.notOk(existsSync(join(nm, dev)), `no dev dependency ${dev}`);
  for (const p of ['config/schema.json', 'docs/schemas/pbx-event.schema.json', 'daemon/capture/speech', 'package.json']) t.ok(existsSync(join(root, 'opt/callrec', p)), `has ${p}`);
  t.notOk(existsSync(join(root, 'opt/callrec/dist/test')), 'no tests in the app');
  const check = run(join(root, 'usr/bin/node'), [join(root, 'opt/callrec/dist/daemon/bin/callrecd.js'), '--check-config', join(root, 'etc/callrec/config.yaml')]);
  t.equal(check.status, 0, 'the staged callrecd loads all its modules and checks the staged config', { stderr: check.err });
  t.match(check.out, /: valid/);

  if (!onPath('systemd-analyze')) return void t.fail(NEED_SYSTEMD);
  const v = run('systemd-analyze', ['verify', `--root=${root}`, join(root, 'etc/systemd/system/callrecd.service')]);
  const lines = (v.out + v.err).split('\n').filter((l) => l.trim());
  // Lines about other units come from the host's own unit files copied into the base root (a
  // distribution's units may use keys this systemd calls deprecated): they say nothing about ours.
  // Everything that names our unit, its binary or the app fails the test.
  const ours = lines.filter((l) => /callrecd|\/opt\/callrec|\/usr\/bin\/node|credstore|\/var\/lib\/callrec/.test(l));
  for (const l of lines.filter((l) => !ours.includes(l))) t.comment(`unrelated: ${l}`);
  t.same(ours, [], 'systemd-analyze verify: nothing about callrecd.service');
  t.ok(v.status === 0 || ours.length === 0, 'systemd-analyze verify exits 0', { output: lines });
});

t.test('a second install.sh run changes nothing and says so', async (t) => {
  if (!isRoot) return void t.fail(NEED_ROOT);
  const before = listing(root);
  const out = ok(t, script('install.sh'), ['--root', root], 'second install.sh');
  t.match(out, /nothing to change/);
  t.notMatch(out, /^(install|update|create|replace|set) /m, 'no action lines');
  t.same(listing(root), before, 'the tree is exactly as before (types, modes, owners, sizes, mtimes)');
});

t.test('--dry-run changes nothing', async (t) => {
  if (!isRoot) return void t.fail(NEED_ROOT);
  // On an installed root that drifted: a wrapper gone, a folder's mode loosened, the config edited.
  unlinkSync(join(root, 'usr/bin/callrec'));
  chmodSync(join(root, 'etc/callrec'), 0o755);
  const edited = readFileSync(join(root, 'etc/callrec/config.yaml'), 'utf8').replace('REPLACE-WITH-A-LONG-RANDOM-TOKEN', 'an-edited-token-0123456789abcdef0123');
  writeFileSync(join(root, 'etc/callrec/config.yaml'), edited);
  const before = listing(root);
  const out = ok(t, script('install.sh'), ['--root', root, '--dry-run'], 'install.sh --dry-run');
  t.match(out, new RegExp(`would install ${esc(root)}/usr/bin/callrec\\n`));
  t.match(out, new RegExp(`would set ${esc(root)}/etc/callrec to 0750`));
  t.match(out, /kept: .*config\.yaml/);
  t.match(out, /nothing was changed/);
  t.same(listing(root), before, 'the tree is exactly as before');

  // A real run repairs the drift and keeps the edited config.
  ok(t, script('install.sh'), ['--root', root], 'install.sh after the drift');
  t.ok(existsSync(join(root, 'usr/bin/callrec')), 'the wrapper is back');
  t.equal(meta(join(root, 'etc/callrec')).mode, '750', '/etc/callrec is 0750 again');
  t.equal(readFileSync(join(root, 'etc/callrec/config.yaml'), 'utf8'), edited, 'the edited config is never overwritten');

  // On a root that does not exist yet: nothing is created.
  const fresh = join(tmp, 'fresh');
  const dry = ok(t, script('install.sh'), ['--root', fresh, '--prefix', '/srv/callrec', '--dry-run'], 'install.sh --dry-run on a new root');
  t.match(dry, /would create system user callrec/);
  t.match(dry, new RegExp(`would install ${esc(fresh)}/srv/callrec `));
  t.notOk(existsSync(fresh), 'the root was not even created');
});

t.test('--prefix moves the app, and the unit and wrappers follow', async (t) => {
  if (!isRoot) return void t.fail(NEED_ROOT);
  const other = join(tmp, 'prefixed');
  ok(t, script('install.sh'), ['--root', other, '--prefix', '/srv/callrec'], 'install.sh --prefix /srv/callrec');
  t.ok(existsSync(join(other, 'srv/callrec/dist/daemon/bin/callrecd.js')), 'the app is under /srv/callrec');
  t.notOk(existsSync(join(other, 'opt/callrec')), 'nothing under /opt/callrec');
  const unit = readFileSync(join(other, 'etc/systemd/system/callrecd.service'), 'utf8');
  t.match(unit, /^ExecStart=\/usr\/bin\/node \/srv\/callrec\/dist\/daemon\/bin\/callrecd\.js /m);
  t.notMatch(unit, /\/opt\/callrec/);
  t.match(readFileSync(join(other, 'usr/bin/callrec'), 'utf8'), /\/srv\/callrec\/dist\/daemon\/bin\/callrec\.js/);
  rmSync(other, { recursive: true, force: true });
});

t.test('uninstall.sh removes the app and keeps the data; --purge destroys it', async (t) => {
  if (!isRoot) return void t.fail(NEED_ROOT);
  // A recording and a (stand-in) key, as on a machine in use.
  const uid = idIn(root, 'passwd', 'callrec')!;
  const gid = idIn(root, 'group', 'callrec')!;
  mkdirSync(join(root, 'var/lib/callrec/recordings'), { recursive: true });
  writeFileSync(join(root, 'var/lib/callrec/recordings/r1.opus.sealed'), 'sealed audio');
  spawnSync('chown', ['-R', `${uid}:${gid}`, join(root, 'var/lib/callrec')]);
  writeFileSync(join(root, 'etc/credstore.encrypted/callrec-master'), 'sealed key', { mode: 0o600 });

  const before = listing(root);
  const dry = ok(t, script('uninstall.sh'), ['--root', root, '--dry-run'], 'uninstall.sh --dry-run');
  t.match(dry, /would remove .*\/opt\/callrec/);
  t.same(listing(root), before, '--dry-run removes nothing');

  const out = ok(t, script('uninstall.sh'), ['--root', root], 'uninstall.sh');
  t.match(out, /kept: .*\/var\/lib\/callrec/);
  for (const gone of ['opt/callrec', 'etc/systemd/system/callrecd.service', 'usr/bin/callrec', 'usr/bin/callrecd', 'usr/share/doc/callrec']) {
    t.notOk(existsSync(join(root, gone)), `removed ${gone}`);
  }
  for (const kept of ['var/lib/callrec/recordings/r1.opus.sealed', 'etc/callrec/config.yaml', 'etc/credstore.encrypted/callrec-master']) {
    t.ok(existsSync(join(root, kept)), `kept ${kept}`);
  }
  t.equal(idIn(root, 'passwd', 'callrec'), uid, 'kept the user callrec');
  t.ok(existsSync(join(root, 'usr/bin/node')) && existsSync(join(root, 'bin/kill')) && existsSync(join(root, 'usr/lib/systemd/system/sysinit.target')), "the machine's own files stay");
  t.match(ok(t, script('uninstall.sh'), ['--root', root], 'uninstall.sh again'), /nothing to remove/);

  const purge = run(script('uninstall.sh'), ['--root', root, '--purge', '--yes']);
  t.equal(purge.status, 0, 'uninstall.sh --purge exits 0', { stderr: purge.err });
  t.match(purge.err, /WARNING: --purge DESTROYS every recording/, 'it warns that recordings and keys are destroyed');
  for (const gone of ['var/lib/callrec', 'etc/callrec', 'etc/credstore.encrypted/callrec-master']) t.notOk(existsSync(join(root, gone)), `purged ${gone}`);
  t.equal(idIn(root, 'passwd', 'callrec'), null, 'no user callrec');
  t.equal(idIn(root, 'group', 'callrec'), null, 'no group callrec');
  t.not(idIn(root, 'group', 'audio'), null, 'the audio group stays');
});

// ---- the .deb -----------------------------------------------------------------------------------

t.test('build-deb.sh: a .deb with the unit, wrappers, app and example config, depending on Node 20', async (t) => {
  if (!isRoot) return void t.fail(NEED_ROOT);
  if (!onPath('dpkg-deb')) return void t.fail(NEED_DPKG);
  const outDir = join(tmp, 'deb');
  const out = ok(t, script('build-deb.sh'), ['--out', outDir], 'build-deb.sh');
  const deb = out.trim().split('\n').pop()!;
  t.equal(deb, join(outDir, `callrec_${VERSION}_amd64.deb`), 'callrec_<version>_amd64.deb');
  if (!existsSync(deb)) return void t.fail('no .deb');

  const contents = ok(t, 'dpkg-deb', ['--contents', deb], 'dpkg-deb --contents')
    .split('\n')
    .map((l) => l.split(/\s+/)[5] ?? '')
    .filter(Boolean);
  for (const f of [
    './lib/systemd/system/callrecd.service',
    './usr/bin/callrec',
    './usr/bin/callrecd',
    './opt/callrec/dist/daemon/bin/callrecd.js',
    './opt/callrec/config/callrec.example.yaml',
    './opt/callrec/node_modules/naudiodon/build/Release/naudiodon.node',
  ]) {
    t.ok(contents.includes(f), `contains ${f}`);
  }
  for (const f of ['./etc/passwd', './etc/group', './var/lib/callrec/', './etc/callrec/config.yaml', './etc/credstore.encrypted/']) {
    t.notOk(contents.includes(f), `does not ship ${f} (postinst makes it on the machine)`);
  }
  t.notOk(contents.some((f) => f.startsWith('./opt/callrec/node_modules/typescript/')), 'no dev dependencies');

  const depends = ok(t, 'dpkg-deb', ['--field', deb, 'Depends'], 'dpkg-deb --field Depends');
  t.match(depends, /(^|, )nodejs \(>= 20\)/, 'Depends: nodejs (>= 20)');
  const description = ok(t, 'dpkg-deb', ['--field', deb, 'Description'], 'dpkg-deb --field Description');
  t.match(description, /Node\.js 20/, 'the Description says where Node 20 comes from');
  t.match(description, /NodeSource/);
  t.equal(ok(t, 'dpkg-deb', ['--field', deb, 'Architecture'], 'Architecture').trim(), 'amd64');
  const info = ok(t, 'dpkg-deb', ['--info', deb], 'dpkg-deb --info');
  for (const s of ['postinst', 'prerm', 'postrm', 'md5sums']) t.match(info, new RegExp(`\\b${s}\\b`), `has ${s}`);

  const unit = spawnSync('sh', ['-c', 'dpkg-deb --fsys-tarfile "$1" | tar -xO ./lib/systemd/system/callrecd.service', '_', deb], { encoding: 'utf8' });
  t.equal(unit.stdout, readFileSync(UNIT, 'utf8'), 'the packaged unit is the repo unit');
});
