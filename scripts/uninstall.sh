#!/usr/bin/env bash
# Removes what scripts/install.sh installed: the app, the systemd unit, the /usr/bin wrappers and the
# docs. Recordings (/var/lib/callrec), the config (/etc/callrec), the master key credential and the
# callrec user stay, so a reinstall finds everything again.
#
#   scripts/uninstall.sh [--root DIR] [--prefix /opt/callrec] [--dry-run] [--purge [--yes]]
#
#   --root DIR   act on DIR instead of / (no systemctl calls then)
#   --prefix P   where the app was installed (default /opt/callrec)
#   --dry-run    print what would be removed, remove nothing
#   --purge      ALSO destroy the recordings, the index, the epoch keys, the config, the master key
#                credential and the callrec user and group. Irreversible. Asks for confirmation on a
#                terminal unless --yes.
#
# A machine with the callrec .deb installed is left alone: use `apt remove callrec` (or purge) there.
set -euo pipefail

usage() { sed -n '6,14p' "$0" | sed 's/^# \{0,1\}//'; }
die() { printf 'uninstall.sh: %s\n' "$*" >&2; exit 1; }

ROOT_ARG=/
PREFIX=/opt/callrec
DRY=0
PURGE=0
YES=0
while (($#)); do
  case "$1" in
    --root) ROOT_ARG=${2:?--root needs a directory}; shift 2 ;;
    --root=*) ROOT_ARG=${1#--root=}; shift ;;
    --prefix) PREFIX=${2:?--prefix needs a path}; shift 2 ;;
    --prefix=*) PREFIX=${1#--prefix=}; shift ;;
    --dry-run|-n) DRY=1; shift ;;
    --purge) PURGE=1; shift ;;
    --yes|-y) YES=1; shift ;;
    -h|--help) usage; exit 0 ;;
    *) usage >&2; die "unknown argument: $1" ;;
  esac
done
[[ $PREFIX == /* && $PREFIX != / ]] || die "--prefix must be an absolute path below /: $PREFIX"
PREFIX=${PREFIX%/}
[[ $ROOT_ARG == /* ]] || ROOT_ARG="$PWD/$ROOT_ARG"
[[ -d $ROOT_ARG ]] || die "no such directory: $ROOT_ARG"
ROOT_ABS=$(cd "$ROOT_ARG" && pwd -P)
if [[ $ROOT_ABS == / ]]; then R=; REAL=1; else R=$ROOT_ABS; REAL=0; fi
if ((!DRY)) && ((EUID != 0)); then die "run as root"; fi
if [[ -e $R/var/lib/dpkg/info/callrec.list ]]; then
  die "callrec is installed as a Debian package here: use \`apt remove callrec\` (or \`apt purge callrec\`)"
fi

say() { printf '%s\n' "$*"; }
CHANGES=0
act() {
  local what=$1; shift
  CHANGES=$((CHANGES + 1))
  if ((DRY)); then say "would $what"; else say "$what"; "$@"; fi
}
remove() { # remove PATH...: each one that exists
  local p
  for p in "$@"; do
    if [[ -e $R$p || -L $R$p ]]; then act "remove $R$p" rm -rf -- "$R$p"; fi
  done
}
db_has() { # db_has passwd|group NAME
  if ((REAL)); then getent "$1" "$2" >/dev/null
  else [[ -f $R/etc/$1 ]] && awk -F: -v n="$2" '$1 == n { f = 1 } END { exit !f }' "$R/etc/$1"
  fi
}
shadow_tool() { if ((REAL)); then "$@"; else "$1" --prefix "$R" "${@:2}"; fi; }
empty_dir() { find "$1" -mindepth 1 -maxdepth 1 -exec rm -rf -- {} +; }

if ((PURGE)); then
  cat >&2 <<EOF
WARNING: --purge DESTROYS every recording and its index under $R/var/lib/callrec, the epoch keys, the
master key credential $R/etc/credstore.encrypted/callrec-master and the config $R/etc/callrec.
Nothing of it can be recovered afterwards (keep a sealed backup of the master key if the agency's
retention rules require the recordings).
EOF
  if ((!DRY && !YES)) && [[ -t 0 ]]; then
    read -r -p "Type DESTROY to go on: " answer
    [[ $answer == DESTROY ]] || die "nothing removed"
  fi
fi

if ((REAL)) && ((!DRY)) && [[ -d /run/systemd/system ]] && systemctl cat callrecd.service >/dev/null 2>&1; then
  # Stopping finalises every open recording (status interrupted) before the files go.
  act "stop and disable callrecd" systemctl disable --now callrecd.service
elif ((REAL)) && ((DRY)) && [[ -e /etc/systemd/system/callrecd.service ]]; then
  say "would stop and disable callrecd"
fi

UNIT_EXISTED=0
if [[ -e $R/etc/systemd/system/callrecd.service ]]; then UNIT_EXISTED=1; fi
remove "$PREFIX" /etc/systemd/system/callrecd.service /etc/systemd/system/multi-user.target.wants/callrecd.service \
  /usr/bin/callrec /usr/bin/callrecd /usr/share/doc/callrec
if ((REAL)) && ((UNIT_EXISTED)) && [[ -d /run/systemd/system ]]; then
  act "reload systemd (systemctl daemon-reload)" systemctl daemon-reload
fi

if ((PURGE)); then
  if [[ -d $R/var/lib/callrec ]] && mountpoint -q "$R/var/lib/callrec" 2>/dev/null; then
    # The encrypted volume stays (crypttab/fstab entries are the admin's): only its content goes.
    act "destroy everything in $R/var/lib/callrec (a mounted volume: the mount stays)" empty_dir "$R/var/lib/callrec"
  else
    remove /var/lib/callrec
  fi
  remove /etc/callrec /etc/credstore.encrypted/callrec-master /etc/credstore.encrypted/callrec-master.new \
    /run/callrec
  if db_has passwd callrec; then act "delete user callrec" shadow_tool userdel callrec; fi
  if db_has group callrec; then act "delete group callrec" shadow_tool groupdel callrec; fi
else
  for kept in /var/lib/callrec /etc/callrec /etc/credstore.encrypted/callrec-master; do
    if [[ -e $R$kept ]]; then say "kept: $R$kept"; fi
  done
  if db_has passwd callrec; then say "kept: user callrec"; fi
  say "(recordings, config, key and user stay; --purge destroys them)"
fi

if ((CHANGES == 0)); then
  say "nothing to remove"
elif ((DRY)); then
  say "dry run: $CHANGES change(s) would be made; nothing was changed"
else
  say "done: $CHANGES change(s)"
fi
