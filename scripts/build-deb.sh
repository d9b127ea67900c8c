#!/usr/bin/env bash
# Builds callrec_<version>_amd64.deb from this built checkout with dpkg-deb (no debhelper, nothing
# downloaded).
#
#   scripts/build-deb.sh [--out DIR]      (default DIR: tmp/ in the checkout, git-ignored; prints the .deb path last)
#
# The files are the layout scripts/install.sh stages with --root, except what belongs to the machine:
# the accounts, /etc/callrec (config), /var/lib/callrec (recordings) and /etc/credstore.encrypted are
# made by the package's postinst instead, and the unit goes to /lib/systemd/system (the package's
# place; the admin's drop-ins go to /etc/systemd/system/callrecd.service.d/).
# The native modules (naudiodon + PortAudio, @discordjs/opus, classic-level, koffi, segfault-handler)
# are packaged as `npm ci` built them in node_modules: x86-64 builds made with Node 20 (ABI 115; the
# N-API ones would load on later Nodes, segfault-handler would not).
# The package Depends on nodejs (>= 20), nodejs (<< 21): Debian 12's own nodejs is 18, so the target
# needs a Debian-packaged Node 20 named `nodejs` (e.g. NodeSource's nodejs 20.x), see docs/operations.md.
set -euo pipefail

die() { printf 'build-deb.sh: %s\n' "$*" >&2; exit 1; }
SRC=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
OUT=$SRC/tmp
while (($#)); do
  case "$1" in
    --out) OUT=${2:?--out needs a directory}; shift 2 ;;
    --out=*) OUT=${1#--out=}; shift ;;
    -h|--help) sed -n '5p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) die "unknown argument: $1" ;;
  esac
done
command -v dpkg-deb >/dev/null || die "dpkg-deb is missing (Debian package dpkg)"
((EUID == 0)) || die "run as root (the staging install sets owners; or use fakeroot)"

VERSION=$(cd "$SRC" && node -p 'require("./package.json").version')
ARCH=amd64
[[ $(dpkg --print-architecture) == "$ARCH" ]] || die "the native modules must be built on $ARCH"
mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)
DEB=$OUT/callrec_${VERSION}_${ARCH}.deb

WORK=$(mktemp -d "${TMPDIR:-/tmp}/callrec-deb.XXXXXX")
trap 'rm -rf "$WORK"' EXIT
STAGE=$WORK/callrec

# ---- the files: scripts/install.sh into the staging root --------------------------------------
"$SRC/scripts/install.sh" --root "$STAGE" >"$WORK/install.log" || { cat "$WORK/install.log" >&2; die "staging install failed"; }
rm -f "$STAGE"/etc/passwd* "$STAGE"/etc/group* "$STAGE"/etc/shadow* "$STAGE"/etc/gshadow*
rm -rf "$STAGE/etc/callrec" "$STAGE/var/lib/callrec" "$STAGE/etc/credstore.encrypted"
mkdir -p "$STAGE/lib/systemd/system"
mv "$STAGE/etc/systemd/system/callrecd.service" "$STAGE/lib/systemd/system/callrecd.service"
find "$STAGE" -depth -type d -empty -delete

# Native modules: built for this architecture and Node 20's ABI, or the package would not load.
while IFS= read -r gypi; do
  grep -q '"node_module_version": 115' "$gypi" || die "${gypi#"$STAGE"} is not built for Node 20 (ABI 115): npm rebuild with Node 20"
  grep -q '"target_arch": "x64"' "$gypi" || die "${gypi#"$STAGE"} is not an x64 build"
done < <(find "$STAGE/opt/callrec/node_modules" -path '*/build/config.gypi')

# ---- DEBIAN/ ----------------------------------------------------------------------------------
mkdir -p "$STAGE/DEBIAN"
INSTALLED_KB=$(du -sk "$STAGE" | cut -f1)
cat >"$STAGE/DEBIAN/control" <<EOF
Package: callrec
Version: $VERSION
Architecture: $ARCH
Maintainer: callrec maintainers <callrec@localhost>
Section: sound
Priority: optional
Installed-Size: $INSTALLED_KB
Depends: nodejs (>= 20), nodejs (<< 21), libc6, libstdc++6, libasound2, libsystemd0, systemd, passwd
Recommends: cryptsetup
Description: on-premises call recorder (PBX-signalled capture to Ogg Opus)
 callrec captures telephony cards through PortAudio, records calls on the
 PBX's signals to encrypted Ogg Opus files and indexes them in LevelDB
 (daemon callrecd under systemd, CLI callrec).
 .
 Node.js: needs a Node.js 20 runtime packaged as "nodejs" with /usr/bin/node.
 Debian 12's own nodejs is 18 and does not satisfy the dependency; install a
 Debian package of Node.js 20 first, e.g. NodeSource's nodejs 20.x
 (deb.nodesource.com, node_20.x). The bundled native modules are built with
 Node 20 and one is tied to its ABI (115), hence also nodejs (<< 21).
 .
 After installing: edit /etc/callrec/config.yaml (device, lines, token),
 check it with callrecd --check-config, then systemctl enable --now callrecd.
EOF

cat >"$STAGE/DEBIAN/postinst" <<'EOF'
#!/bin/sh
# callrec postinst: the system user, its directories, the config (only when absent), systemd.
set -e
if [ "$1" = configure ]; then
  getent group audio >/dev/null || groupadd --system audio
  getent group callrec >/dev/null || groupadd --system callrec
  if ! getent passwd callrec >/dev/null; then
    useradd --system --gid callrec --groups audio --home-dir /var/lib/callrec --no-create-home \
      --shell /usr/sbin/nologin --comment "callrec call recorder" callrec
  elif ! id -nG callrec | tr ' ' '\n' | grep -qx audio; then
    usermod --append --groups audio callrec
  fi
  install -d -m 0750 -o callrec -g callrec /var/lib/callrec
  install -d -m 0750 -o root -g callrec /etc/callrec
  install -d -m 0700 -o root -g root /etc/credstore.encrypted
  # Never overwrite an edited config: only the first install copies the example.
  if [ ! -e /etc/callrec/config.yaml ]; then
    install -m 0640 -o root -g callrec /opt/callrec/config/callrec.example.yaml /etc/callrec/config.yaml
    echo "callrec: edit /etc/callrec/config.yaml (device, lines, signals.token), then: callrecd --check-config /etc/callrec/config.yaml"
  fi
  if [ -e /etc/systemd/system/callrecd.service ]; then
    echo "callrec: NOTE /etc/systemd/system/callrecd.service (from scripts/install.sh?) shadows the packaged unit /lib/systemd/system/callrecd.service: remove it unless it is meant to"
  fi
  if [ -d /run/systemd/system ]; then
    systemctl daemon-reload || true
    # An upgrade restarts a running recorder (SIGTERM finalises its open recordings first).
    if [ -n "$2" ]; then systemctl try-restart callrecd.service || true; fi
  fi
  if [ ! -e /etc/credstore.encrypted/callrec-master ]; then
    echo "callrec: no master key yet. Make it on this machine, as root (docs/security.md):"
    echo "  head -c 32 /dev/urandom | systemd-creds encrypt --name=callrec-master - /etc/credstore.encrypted/callrec-master"
  fi
  echo "callrec: start with: systemctl enable --now callrecd"
fi
exit 0
EOF

cat >"$STAGE/DEBIAN/prerm" <<'EOF'
#!/bin/sh
# callrec prerm: stop the recorder before its files go (SIGTERM finalises open recordings).
set -e
case "$1" in
  remove|deconfigure)
    if [ -d /run/systemd/system ]; then systemctl stop callrecd.service || true; fi
    systemctl --no-reload disable callrecd.service >/dev/null 2>&1 || true
    ;;
esac
exit 0
EOF

cat >"$STAGE/DEBIAN/postrm" <<'EOF'
#!/bin/sh
# callrec postrm. remove: reload systemd. purge: also the config; recordings, keys and the user stay.
set -e
case "$1" in
  remove|purge)
    if [ -d /run/systemd/system ]; then systemctl daemon-reload || true; fi
    ;;
esac
if [ "$1" = purge ]; then
  rm -rf /etc/callrec
  echo "callrec: kept /var/lib/callrec (recordings), /etc/credstore.encrypted/callrec-master (master key) and the user callrec."
  echo "callrec: to destroy them for good: rm -rf /var/lib/callrec /etc/credstore.encrypted/callrec-master && userdel callrec"
fi
exit 0
EOF
chmod 0755 "$STAGE/DEBIAN/postinst" "$STAGE/DEBIAN/prerm" "$STAGE/DEBIAN/postrm"
(cd "$STAGE" && find . -path ./DEBIAN -prune -o -type f -printf '%P\0' | LC_ALL=C sort -z | xargs -0 md5sum) >"$STAGE/DEBIAN/md5sums"
chmod 0644 "$STAGE/DEBIAN/control" "$STAGE/DEBIAN/md5sums"

# gzip: much faster than xz here, and dpkg reads it everywhere.
dpkg-deb --root-owner-group -Zgzip --build "$STAGE" "$DEB" >/dev/null
echo "$DEB"
