#!/usr/bin/env bash
# Installs callrec from this (built) checkout: the app, a `callrec` system user, its directories, the
# config (only when absent), the hardened systemd unit and the /usr/bin wrappers.
#
#   scripts/install.sh [--root DIR] [--prefix /opt/callrec] [--dry-run]
#
#   --root DIR   install into DIR instead of / (a staging or image root): accounts go into DIR/etc with
#                `useradd --prefix DIR`, files are owned by the ids found there, and nothing touches the
#                running system (no daemon-reload, no key: the command to make it is printed)
#   --prefix P   where the app goes (default /opt/callrec); the unit and wrappers are rewritten to match
#   --dry-run    print what would change, change nothing
#
# Needs a built checkout (`npm ci && npm run build`: dist/ and node_modules/), root for a real install,
# and on the target a Node.js 20 at /usr/bin/node (Debian 12's own nodejs is 18: docs/operations.md).
# Idempotent: a second run changes nothing and says so. An existing /etc/callrec/config.yaml is never
# touched. Removal: scripts/uninstall.sh.
set -euo pipefail
umask 022

usage() { sed -n '5,11p' "$0" | sed 's/^# \{0,1\}//'; }
die() { printf 'install.sh: %s\n' "$*" >&2; exit 1; }

SRC=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
ARGS=("$@")
ROOT_ARG=/
PREFIX=/opt/callrec
DRY=0
while (($#)); do
  case "$1" in
    --root) ROOT_ARG=${2:?--root needs a directory}; shift 2 ;;
    --root=*) ROOT_ARG=${1#--root=}; shift ;;
    --prefix) PREFIX=${2:?--prefix needs a path}; shift 2 ;;
    --prefix=*) PREFIX=${1#--prefix=}; shift ;;
    --dry-run|-n) DRY=1; shift ;;
    -h|--help) usage; exit 0 ;;
    *) usage >&2; die "unknown argument: $1" ;;
  esac
done
[[ $PREFIX == /* && $PREFIX != / ]] || die "--prefix must be an absolute path below /: $PREFIX"
PREFIX=${PREFIX%/}
[[ $ROOT_ARG == /* ]] || ROOT_ARG="$PWD/$ROOT_ARG"
if [[ -d $ROOT_ARG ]]; then ROOT_ABS=$(cd "$ROOT_ARG" && pwd -P); else ROOT_ABS=${ROOT_ARG%/}; fi
# R prefixes every target path: empty for the real root.
if [[ $ROOT_ABS == / || -z $ROOT_ABS ]]; then R=; REAL=1; else R=$ROOT_ABS; REAL=0; fi

APP_USER=callrec
APP_GROUP=callrec
UNIT_DIR=/etc/systemd/system
CRED=/etc/credstore.encrypted/callrec-master
CRED_CMD="head -c 32 /dev/urandom | systemd-creds encrypt --name=callrec-master - $CRED"

# ---- checks -------------------------------------------------------------------------------------
for f in package.json package-lock.json dist/daemon/bin/callrecd.js dist/daemon/bin/callrec.js \
  dist/native/libc.js config/callrec.example.yaml config/schema.json systemd/callrecd.service \
  docs/schemas/pbx-event.schema.json daemon/capture/speech node_modules/koffi; do
  [[ -e $SRC/$f ]] || die "$SRC/$f is missing: run \`npm ci && npm run build\` in $SRC first"
done
command -v node >/dev/null || die "node is needed to read package-lock.json (Node.js 20)"
if ((!DRY)) && ((EUID != 0)); then die "run as root (files are owned by root and callrec): sudo $0 ${ARGS[*]}"; fi

say() { printf '%s\n' "$*"; }
CHANGES=0
# act DESCRIPTION COMMAND...: counts a change; runs it, or only prints it in a dry run.
act() {
  local what=$1; shift
  CHANGES=$((CHANGES + 1))
  if ((DRY)); then say "would $what"; else say "$what"; "$@"; fi
}

# ---- accounts -----------------------------------------------------------------------------------
# Accounts are read from the target root's files (a real root asks NSS through getent).
db_get() { # db_get passwd|group NAME -> the entry, or nothing
  if ((REAL)); then getent "$1" "$2" || true
  elif [[ -f $R/etc/$1 ]]; then awk -F: -v n="$2" '$1 == n' "$R/etc/$1"
  fi
}
uid_of() { db_get passwd "$1" | cut -d: -f3; }
gid_of() { db_get group "$1" | cut -d: -f3; }
# useradd/groupadd/usermod act on DIR/etc with --prefix (shadow 4.9+; Debian 12 has 4.13). They do not
# chroot, so the target needs no binaries of its own.
shadow_tool() { if ((REAL)); then "$@"; else "$1" --prefix "$R" "${@:2}"; fi; }

seed_root_db() {
  # An empty staging root has no account files for useradd to edit: start them as Debian's base-passwd
  # does (root, and the audio group with its fixed gid 29), no shadow files (useradd then writes "!" as
  # the password, i.e. locked).
  mkdir -p "$R/etc"
  [[ -e $R/etc/passwd ]] || printf 'root:x:0:0:root:/root:/bin/bash\n' >"$R/etc/passwd"
  [[ -e $R/etc/group ]] || printf 'root:x:0:\naudio:x:29:\n' >"$R/etc/group"
}

ensure_accounts() {
  local seeding=0
  if ((!REAL)) && [[ ! -e $R/etc/passwd || ! -e $R/etc/group ]]; then
    seeding=1
    act "create $R/etc/passwd and $R/etc/group (root, audio:29, as base-passwd)" seed_root_db
  fi
  # (In a dry run the seed is not written: its audio group counts as there.)
  if [[ -z $(db_get group audio) ]] && ! ((seeding && DRY)); then
    act "create group audio" shadow_tool groupadd --system audio
  fi
  if [[ -z $(db_get group "$APP_GROUP") ]]; then
    act "create system group $APP_GROUP" shadow_tool groupadd --system "$APP_GROUP"
  fi
  if [[ -z $(db_get passwd "$APP_USER") ]]; then
    act "create system user $APP_USER (home /var/lib/callrec, no login, groups $APP_GROUP + audio)" \
      shadow_tool useradd --system --gid "$APP_GROUP" --groups audio --home-dir /var/lib/callrec \
      --no-create-home --shell /usr/sbin/nologin --comment "callrec call recorder" "$APP_USER"
  elif ! db_get group audio | cut -d: -f4 | tr ',' '\n' | grep -qx "$APP_USER"; then
    act "add $APP_USER to group audio" shadow_tool usermod --append --groups audio "$APP_USER"
  else
    say "unchanged: user $APP_USER"
  fi
}

# ---- files and directories ----------------------------------------------------------------------
# Owner NAME -> numeric id in the target root; in a dry run before the account exists: the name.
num_uid() { local n; if [[ $1 == root ]]; then echo 0; else n=$(uid_of "$1"); echo "${n:-$1}"; fi; }
num_gid() { local n; if [[ $1 == root ]]; then echo 0; else n=$(gid_of "$1"); echo "${n:-$1}"; fi; }
meta() { stat -c '%a %u %g' "$1"; }
set_meta() { chmod "$1" "$4" && chown "$2:$3" "$4"; }                            # MODE UID GID PATH
replace_file() { rm -f "$5" && install -m "$1" -o "$2" -g "$3" "$4" "$5"; }      # MODE UID GID SRC DEST

# ensure_dir PATH MODE OWNER GROUP
ensure_dir() {
  local p=$R$1 mode=$2 u g
  u=$(num_uid "$3"); g=$(num_gid "$4")
  if [[ ! -d $p ]]; then
    act "create $p ($mode $3:$4)" install -d -m "$mode" -o "$u" -g "$g" "$p"
  elif [[ $(meta "$p") != "${mode#0} $u $g" ]]; then
    act "set $p to $mode $3:$4 (was $(stat -c '%a %U:%G' "$p"))" set_meta "$mode" "$u" "$g" "$p"
  else
    say "unchanged: $p"
  fi
}

# ensure_parent PATH: a system folder (/opt, /usr/bin, ...): created when missing, never changed.
ensure_parent() {
  [[ -d $R$1 ]] || act "create $R$1" install -d -m 0755 -o 0 -g 0 "$R$1"
}

# ensure_file SOURCE DEST MODE OWNER GROUP: replaces DEST when its content or metadata differ.
ensure_file() {
  local src=$1 p=$R$2 mode=$3 u g
  u=$(num_uid "$4"); g=$(num_gid "$5")
  if [[ ! -e $p ]]; then
    act "install $p" install -m "$mode" -o "$u" -g "$g" "$src" "$p"
  elif [[ -L $p ]] || ! cmp -s "$src" "$p" || [[ $(meta "$p") != "${mode#0} $u $g" ]]; then
    act "update $p" replace_file "$mode" "$u" "$g" "$src" "$p"
  else
    say "unchanged: $p"
  fi
}

WORK=$(mktemp -d "${TMPDIR:-/tmp}/callrec-install.XXXXXX")
trap 'rm -rf "$WORK"' EXIT

# The app tree, assembled in WORK/app exactly as it must end up in PREFIX: what the daemon and the CLI
# load at run time, and nothing of the build (no tests, no TypeScript, no dev dependencies).
build_app_tree() {
  local a=$WORK/app
  mkdir -p "$a/dist" "$a/daemon/capture" "$a/docs" "$a/scripts"
  cp "$SRC/package.json" "$SRC/package-lock.json" "$SRC/README.md" "$a/"
  cp -R "$SRC/dist/daemon" "$SRC/dist/native" "$a/dist/"
  cp -R "$SRC/config" "$a/"
  cp -R "$SRC/daemon/capture/speech" "$a/daemon/capture/"
  cp -R "$SRC/docs/schemas" "$a/docs/"
  cp "$SRC/scripts/setup-encrypted-volume.sh" "$a/scripts/"
  # Production dependencies only: every package-lock entry not marked dev that is on disk (optional
  # ones for other platforms are not), each without its nested node_modules (listed on their own).
  # The native modules are used as built by `npm ci` on this machine (x86-64, Node 20 ABI 115).
  (cd "$SRC" && node -e '
    const lock = require("./package-lock.json");
    const fs = require("fs");
    for (const [p, e] of Object.entries(lock.packages || {}))
      if (p && !e.dev && !e.link && fs.existsSync(p)) console.log(p);
  ') | while IFS= read -r pkg; do
    mkdir -p "$a/$pkg"
    find "$SRC/$pkg" -mindepth 1 -maxdepth 1 ! -name node_modules -exec cp -R {} "$a/$pkg/" \;
  done
  # root:root, u=rwX,go=rX: nobody but root writes the code the recorder runs.
  chmod -R u+rwX,go+rX,go-w "$a"
  if ((EUID == 0)); then chown -R 0:0 "$a"; fi
}

# Type, mode, link target (and owner: only root could have made the candidate root-owned).
tree_listing() {
  local fmt='%P %y %m %l\n'
  ((EUID == 0)) && fmt='%P %y %m %U %G %l\n'
  (cd "$1" && find . -printf "$fmt" | LC_ALL=C sort)
}

ensure_app() {
  local p=$R$PREFIX
  build_app_tree
  if [[ -d $p ]] && diff -r --no-dereference -q "$WORK/app" "$p" >/dev/null 2>&1 \
    && [[ $(tree_listing "$WORK/app") == "$(tree_listing "$p")" ]]; then
    say "unchanged: $p ($(find "$p" -type f | wc -l) files)"
    return
  fi
  local verb=install
  [[ -e $p ]] && verb=replace
  act "$verb $p (the app: dist, production node_modules, config templates, speech, schemas)" swap_app "$p"
}

swap_app() { # the new tree beside the old, then one rename each way
  local p=$1
  mkdir -p "$(dirname "$p")"
  rm -rf "$p.new" "$p.old"
  cp -a "$WORK/app" "$p.new"
  chmod 0755 "$p.new"
  if [[ -e $p ]]; then mv "$p" "$p.old"; fi
  mv "$p.new" "$p"
  rm -rf "$p.old"
}

make_wrapper() { # make_wrapper NAME SCRIPT -> WORK/NAME
  printf '#!/bin/sh\n# %s, installed by callrec scripts/install.sh: runs the app under the Node.js 20 the unit uses.\nexec /usr/bin/node %s/dist/daemon/bin/%s "$@"\n' \
    "$1" "$PREFIX" "$2" >"$WORK/$1"
}

# ---- run ----------------------------------------------------------------------------------------
if ((REAL)); then say "callrec: installing into / (prefix $PREFIX)"; else say "callrec: installing into $R (prefix $PREFIX)"; fi
((DRY)) && say "dry run: nothing is changed"
if ((!DRY)) && ((!REAL)); then mkdir -p "$R"; fi

ensure_accounts
ensure_parent "$(dirname "$PREFIX")"
ensure_app
ensure_dir /var/lib/callrec 0750 "$APP_USER" "$APP_GROUP"
ensure_dir /etc/callrec 0750 root "$APP_GROUP"
ensure_dir /etc/credstore.encrypted 0700 root root
if [[ -d $R/etc/callrec && ! -x $R/etc/callrec ]]; then
  say "cannot see into $R/etc/callrec without root: config.yaml is left as it is"
elif [[ -e $R/etc/callrec/config.yaml ]]; then
  say "kept: $R/etc/callrec/config.yaml (an existing config is never overwritten)"
else
  act "install $R/etc/callrec/config.yaml from config/callrec.example.yaml (edit it: device, lines, token)" \
    install -m 0640 -o "$(num_uid root)" -g "$(num_gid "$APP_GROUP")" "$SRC/config/callrec.example.yaml" "$R/etc/callrec/config.yaml"
fi

ensure_parent "$UNIT_DIR"
sed -e "s#/opt/callrec/#$PREFIX/#g" "$SRC/systemd/callrecd.service" >"$WORK/callrecd.service"
UNIT_BEFORE=$CHANGES
ensure_file "$WORK/callrecd.service" "$UNIT_DIR/callrecd.service" 0644 root root
UNIT_CHANGED=$((CHANGES - UNIT_BEFORE))

ensure_parent /usr/bin
make_wrapper callrec callrec.js
make_wrapper callrecd callrecd.js
ensure_file "$WORK/callrec" /usr/bin/callrec 0755 root root
ensure_file "$WORK/callrecd" /usr/bin/callrecd 0755 root root

ensure_parent /usr/share/doc
ensure_dir /usr/share/doc/callrec 0755 root root
for doc in "$SRC/README.md" "$SRC"/docs/*.md; do
  ensure_file "$doc" "/usr/share/doc/callrec/$(basename "$doc")" 0644 root root
done

# ---- the running system (a real root only) ------------------------------------------------------
if ((REAL)); then
  if ((UNIT_CHANGED)) && [[ -d /run/systemd/system ]]; then
    act "reload systemd (systemctl daemon-reload)" systemctl daemon-reload
  fi
  if [[ -e $CRED ]]; then
    say "kept: $CRED (the master key)"
  elif ((EUID != 0)) && [[ -d /etc/credstore.encrypted && ! -x /etc/credstore.encrypted ]]; then
    say "cannot see into /etc/credstore.encrypted without root: whether the master key exists is unknown"
  elif ! command -v systemd-creds >/dev/null; then
    say "NOTE: no master key yet and no systemd-creds here; on the machine, as root: $CRED_CMD"
  else
    act "create the master key credential: $CRED_CMD" sh -c "$CRED_CMD"
    ((DRY)) || chmod 0600 "$CRED"
  fi
  [[ -x /usr/bin/node ]] || say "WARNING: /usr/bin/node is missing: the unit and wrappers need Node.js 20 there (docs/operations.md)"
else
  say "not done in a --root install (the target machine does these):"
  say "  systemctl daemon-reload"
  say "  [ -e $CRED ] || { $CRED_CMD; }"
fi

if ((CHANGES == 0)); then
  say "nothing to change: callrec is installed as this checkout has it"
elif ((DRY)); then
  say "dry run: $CHANGES change(s) would be made; nothing was changed"
else
  say "done: $CHANGES change(s)"
  say "next: edit $R/etc/callrec/config.yaml, then callrecd --check-config /etc/callrec/config.yaml and systemctl enable --now callrecd"
fi
