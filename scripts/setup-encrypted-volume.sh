#!/usr/bin/env bash
# setup-encrypted-volume.sh: put callrec's data directory on a LUKS2 (dm-crypt) volume.
#
# callrecd refuses a data directory that is not on an encrypted disk (daemon/ops/encryptedDisk.ts
# checks the mount's block device for a dm-crypt layer). This script makes such a disk out of an
# empty block device (a partition, a whole disk or an LVM logical volume):
#
#   1. cryptsetup luksFormat --type luks2   (ERASES the device; cryptsetup asks for 'YES' itself)
#   2. cryptsetup open ... callrec_data     (-> /dev/mapper/callrec_data)
#   3. mkfs.ext4 on /dev/mapper/callrec_data
#   4. a line in /etc/crypttab (the LUKS device by UUID) and one in /etc/fstab, both backed up first
#   5. mount on MOUNTPOINT (default /var/lib/callrec), chown callrec:callrec, chmod 0750
#   6. prints what is left to the operator: key backup, unattended unlock (TPM2), moving old data
#
# Safety: it refuses a device that is mounted, used as swap, or held by LVM/dm/md, and a device
# that already carries a filesystem, partition table or other signature unless --force. It never
# formats anything in --dry-run, which prints the commands it would run (the device need not exist).
# See docs/security.md.
#
# Usage: scripts/setup-encrypted-volume.sh [options] DEVICE [MOUNTPOINT]
set -euo pipefail

readonly MAPPER_NAME=callrec_data
readonly DEFAULT_MOUNTPOINT=/var/lib/callrec
readonly DATA_USER=callrec
readonly DATA_GROUP=callrec
readonly CRYPTTAB=/etc/crypttab
readonly FSTAB=/etc/fstab
readonly FS_LABEL=callrec_data
readonly CRYPT_UNIT="systemd-cryptsetup@${MAPPER_NAME}.service"
PROG=$(basename "$0")
readonly PROG

DRY_RUN=0
FORCE=0
KEY_FILE=""
DEVICE=""
MOUNTPOINT=""

usage() {
  cat <<EOF
Usage: $PROG [options] DEVICE [MOUNTPOINT]

Set up a LUKS2-encrypted ext4 volume on DEVICE for callrec's data directory and mount it on
MOUNTPOINT (default $DEFAULT_MOUNTPOINT) at every boot.

ALL DATA ON DEVICE IS DESTROYED. Run as root with callrecd stopped.

Arguments:
  DEVICE        an empty block device: /dev/sdb, /dev/nvme0n1p4, /dev/vg0/callrec, ...
  MOUNTPOINT    where the data directory lives (default $DEFAULT_MOUNTPOINT; must match dataDir
                in /etc/callrec/config.yaml and the paths in callrecd.service)

Options:
  -n, --dry-run      print the commands that would run and the crypttab/fstab lines; change nothing.
                     Works without root and without DEVICE existing (checks that need it are skipped).
  -f, --force        format DEVICE even though it carries a filesystem, partition table or other
                     signature, and mount over a MOUNTPOINT that is not empty. A mounted or in-use
                     device is refused whatever the options.
      --key-file F   use the key in file F instead of a typed passphrase (luksFormat, open, and the
                     third field of the crypttab line). Only sensible when F is itself on an encrypted
                     root filesystem; see the TPM2 option printed at the end for a better choice.
  -h, --help         this text.

What it does:
  cryptsetup luksFormat --type luks2 --uuid <new uuid> DEVICE
  cryptsetup open --type luks2 DEVICE $MAPPER_NAME
  mkfs.ext4 -L $FS_LABEL /dev/mapper/$MAPPER_NAME
  $CRYPTTAB:  $MAPPER_NAME UUID=<uuid> none luks,nofail
  $FSTAB:     /dev/mapper/$MAPPER_NAME MOUNTPOINT ext4 defaults,nodev,nosuid,noexec,nofail,x-systemd.requires=$CRYPT_UNIT 0 2
  mount MOUNTPOINT; chown $DATA_USER:$DATA_GROUP MOUNTPOINT; chmod 0750 MOUNTPOINT

'nofail' keeps the machine booting (and reachable over SSH) when the volume cannot be unlocked
unattended; callrecd.service has RequiresMountsFor=$DEFAULT_MOUNTPOINT, so the daemon does not
start, and never writes to the unencrypted directory underneath, until the volume is mounted.

See docs/security.md.
EOF
}

info() { printf '%s: %s\n' "$PROG" "$*"; }
warn() { printf '%s: warning: %s\n' "$PROG" "$*" >&2; }
die() {
  printf '%s: error: %s\n' "$PROG" "$*" >&2
  exit 1
}

# Print a command shell-quoted; run it unless --dry-run.
run() {
  local quoted
  printf -v quoted '%q ' "$@"
  printf '+ %s\n' "${quoted% }"
  if ((DRY_RUN == 0)); then
    "$@"
  fi
}

# Append one line to a file (after a backup copy); in --dry-run only say so.
append_line() {
  local file=$1 line=$2
  printf '+ append to %s: %s\n' "$file" "$line"
  if ((DRY_RUN == 0)); then
    printf '%s\n' "$line" >>"$file"
  fi
}

backup_file() {
  local file=$1
  if [[ -e $file ]]; then
    run cp -a "$file" "$file.callrec-backup-$(date +%Y%m%dT%H%M%S)"
  fi
}

# True when FILE has an uncommented line whose field number FIELD equals VALUE.
has_entry() {
  local file=$1 field=$2 value=$3
  [[ -r $file ]] || return 1
  awk -v f="$field" -v v="$value" '$1 !~ /^#/ && $f == v { found = 1 } END { exit !found }' "$file"
}

new_uuid() {
  if [[ -r /proc/sys/kernel/random/uuid ]]; then
    cat /proc/sys/kernel/random/uuid
  elif command -v uuidgen >/dev/null 2>&1; then
    uuidgen
  else
    die "cannot make a UUID: neither /proc/sys/kernel/random/uuid nor uuidgen is available"
  fi
}

# ---- arguments --------------------------------------------------------------------------------
positional=()
while (($# > 0)); do
  case $1 in
    -h | --help)
      usage
      exit 0
      ;;
    -n | --dry-run) DRY_RUN=1 ;;
    -f | --force) FORCE=1 ;;
    --key-file)
      (($# >= 2)) || die "--key-file needs a file name"
      KEY_FILE=$2
      shift
      ;;
    --key-file=*) KEY_FILE=${1#--key-file=} ;;
    --)
      shift
      positional+=("$@")
      break
      ;;
    -*) die "unknown option $1 (see --help)" ;;
    *) positional+=("$1") ;;
  esac
  shift
done

((${#positional[@]} >= 1)) || {
  usage >&2
  exit 2
}
((${#positional[@]} <= 2)) || die "too many arguments (see --help)"
DEVICE=${positional[0]}
MOUNTPOINT=${positional[1]:-$DEFAULT_MOUNTPOINT}

[[ $DEVICE == /* ]] || die "DEVICE must be an absolute path such as /dev/sdb, not '$DEVICE'"
[[ $MOUNTPOINT == /* ]] || die "MOUNTPOINT must be an absolute path, not '$MOUNTPOINT'"
[[ $MOUNTPOINT != / ]] || die "MOUNTPOINT must not be /"
MOUNTPOINT=${MOUNTPOINT%/}
[[ $MOUNTPOINT =~ ^/[A-Za-z0-9._/+@-]+$ ]] ||
  die "MOUNTPOINT '$MOUNTPOINT' has characters fstab would need escaped; choose a plain path"
if [[ -n $KEY_FILE ]]; then
  [[ $KEY_FILE == /* ]] || die "--key-file must be an absolute path (it goes into $CRYPTTAB)"
  [[ $KEY_FILE =~ ^/[A-Za-z0-9._/+@-]+$ ]] || die "--key-file path has characters crypttab cannot hold"
fi

if ((DRY_RUN)); then
  info "dry run: nothing is changed; these are the commands a real run would execute"
fi

# ---- preconditions ----------------------------------------------------------------------------
if ((DRY_RUN == 0)); then
  ((EUID == 0)) || die "run as root (or try --dry-run)"
  for cmd in cryptsetup mkfs.ext4 blkid lsblk findmnt mount awk; do
    command -v "$cmd" >/dev/null 2>&1 || die "$cmd not found (Debian: apt-get install cryptsetup e2fsprogs util-linux)"
  done
  getent passwd "$DATA_USER" >/dev/null || die "user $DATA_USER does not exist; install callrec first (it creates the user)"
  getent group "$DATA_GROUP" >/dev/null || die "group $DATA_GROUP does not exist; install callrec first"
  [[ -z $KEY_FILE || -r $KEY_FILE ]] || die "key file $KEY_FILE is not readable"
  if command -v systemctl >/dev/null 2>&1 && systemctl is-active --quiet callrecd.service; then
    die "callrecd is running; stop it first: systemctl stop callrecd"
  fi
fi

refuse() {
  if ((DRY_RUN)); then
    printf '%s: a real run would refuse: %s\n' "$PROG" "$*" >&2
    exit 1
  fi
  die "$*"
}

refuse_unless_forced() {
  if ((FORCE)); then
    warn "$* (going on: --force)"
  else
    refuse "$* (use --force to go on anyway)"
  fi
}

if [[ -e $DEVICE ]]; then
  [[ -b $DEVICE ]] || refuse "$DEVICE is not a block device"
  real_device=$(readlink -f -- "$DEVICE")
  kname=$(basename -- "$real_device")

  # Mounted, or a child (partition, LV, mapping) mounted or used as swap: never format.
  if command -v lsblk >/dev/null 2>&1; then
    in_use=$(lsblk -nro MOUNTPOINT -- "$DEVICE" 2>/dev/null | sed '/^$/d' | tr '\n' ' ' || true)
    [[ -z $in_use ]] || refuse "$DEVICE (or a partition or volume on it) is mounted or in use: ${in_use% }"
  fi
  if command -v findmnt >/dev/null 2>&1 && findmnt -rn --source "$DEVICE" >/dev/null 2>&1; then
    refuse "$DEVICE is mounted"
  fi
  if awk -v d="$real_device" 'NR > 1 && $1 == d { found = 1 } END { exit !found }' /proc/swaps 2>/dev/null; then
    refuse "$DEVICE is in use as swap"
  fi
  # Held by device-mapper (LVM, an open LUKS mapping) or md RAID.
  holders=()
  for holder in "/sys/class/block/$kname/holders"/*; do
    if [[ -e $holder ]]; then
      holders+=("$(basename -- "$holder")")
    fi
  done
  if ((${#holders[@]} > 0)); then
    refuse "$DEVICE is in use by ${holders[*]} (LVM, device-mapper or md RAID)"
  fi

  # Any filesystem, partition table, LUKS header, RAID or LVM signature: only with --force.
  # (blkid exits 2 both for "nothing found" and for "cannot open", so try a read first.)
  if head -c 4096 -- "$DEVICE" >/dev/null 2>&1; then
    set +e
    signature=$(blkid -p -o export -- "$DEVICE" 2>/dev/null)
    blkid_rc=$?
    set -e
    if ((blkid_rc == 0)); then
      found=$(printf '%s\n' "$signature" | grep -E '^(TYPE|PTTYPE|LABEL|UUID)=' | tr '\n' ' ' || true)
      refuse_unless_forced "$DEVICE already carries data: ${found:-a signature blkid recognises}"
    elif ((blkid_rc != 2)); then
      refuse_unless_forced "cannot probe $DEVICE for existing data (blkid exit $blkid_rc)"
    fi
  elif ((DRY_RUN)); then
    warn "cannot read $DEVICE as $(id -un || true); not checking it for existing data (a real run, as root, does)"
  else
    refuse_unless_forced "cannot read $DEVICE to check it for existing data"
  fi
elif ((DRY_RUN)); then
  warn "$DEVICE does not exist; the checks on it (mounted, in use, existing data) are skipped in this dry run"
else
  die "$DEVICE does not exist"
fi

[[ ! -e /dev/mapper/$MAPPER_NAME ]] || refuse "/dev/mapper/$MAPPER_NAME already exists (cryptsetup close $MAPPER_NAME, or it is set up already)"
! has_entry "$CRYPTTAB" 1 "$MAPPER_NAME" || refuse "$CRYPTTAB already has an entry for $MAPPER_NAME"
! has_entry "$FSTAB" 2 "$MOUNTPOINT" || refuse "$FSTAB already has an entry for $MOUNTPOINT"
if command -v findmnt >/dev/null 2>&1 && findmnt -rn --mountpoint "$MOUNTPOINT" >/dev/null 2>&1; then
  refuse "something is already mounted on $MOUNTPOINT"
fi
if [[ -d $MOUNTPOINT ]] && [[ -n $(ls -A -- "$MOUNTPOINT" 2>/dev/null) ]]; then
  refuse_unless_forced "$MOUNTPOINT is not empty: its files would be hidden under the new volume and stay unencrypted on the disk below. Move them away first (mv $MOUNTPOINT $MOUNTPOINT.old), copy them in afterwards, then wipe the old copy"
fi
if ((DRY_RUN)) && ! getent passwd "$DATA_USER" >/dev/null 2>&1; then
  warn "user $DATA_USER does not exist here; a real run requires it"
fi

# ---- the work ---------------------------------------------------------------------------------
# set -e stops at the first failing step; say so, since the steps before it stay done.
trap 'printf "%s: stopped: the last command shown (+) failed; the steps before it are done, none after it\n" "$PROG" >&2' ERR
LUKS_UUID=$(new_uuid)
key_args=()
crypttab_key=none
crypttab_opts=luks,nofail
if [[ -n $KEY_FILE ]]; then
  key_args=(--key-file "$KEY_FILE")
  crypttab_key=$KEY_FILE
fi
crypttab_line="$MAPPER_NAME UUID=$LUKS_UUID $crypttab_key $crypttab_opts"
fstab_line="/dev/mapper/$MAPPER_NAME $MOUNTPOINT ext4 defaults,nodev,nosuid,noexec,nofail,x-systemd.requires=$CRYPT_UNIT 0 2"

info "LUKS2 volume on $DEVICE (UUID $LUKS_UUID) -> /dev/mapper/$MAPPER_NAME -> $MOUNTPOINT"
if ((DRY_RUN == 0)); then
  info "ALL DATA ON $DEVICE WILL BE DESTROYED. cryptsetup asks you to confirm with YES."
fi

# cryptsetup asks for confirmation (no --batch-mode) and, without a key file, for the passphrase twice.
run cryptsetup luksFormat --type luks2 --uuid "$LUKS_UUID" "${key_args[@]}" "$DEVICE"
run cryptsetup open --type luks2 "${key_args[@]}" "$DEVICE" "$MAPPER_NAME"
run mkfs.ext4 -L "$FS_LABEL" "/dev/mapper/$MAPPER_NAME"

backup_file "$CRYPTTAB"
append_line "$CRYPTTAB" "$crypttab_line"
backup_file "$FSTAB"
append_line "$FSTAB" "$fstab_line"
if command -v systemctl >/dev/null 2>&1; then
  # Let systemd's crypttab and fstab generators see the new lines.
  run systemctl daemon-reload
fi

run mkdir -p "$MOUNTPOINT"
run mount "$MOUNTPOINT"
run chown "$DATA_USER:$DATA_GROUP" "$MOUNTPOINT"
run chmod 0750 "$MOUNTPOINT"

if ((DRY_RUN == 0)); then
  findmnt "$MOUNTPOINT" || true
  cryptsetup status "$MAPPER_NAME" || true
fi

# ---- what is left to the operator -------------------------------------------------------------
if ((DRY_RUN)); then
  outcome='dry run done, nothing changed. After a real run, this is left to you'
  written='Lines a real run writes'
else
  outcome='done. What is left to you'
  written='Lines written'
fi
unit_note=''
if [[ $MOUNTPOINT != "$DEFAULT_MOUNTPOINT" ]]; then
  unit_note="
     callrecd.service names $DEFAULT_MOUNTPOINT (RequiresMountsFor=, ReadWritePaths=, StateDirectory=):
     point it at $MOUNTPOINT with 'systemctl edit callrecd', and dataDir in the config too."
fi
cat <<EOF

$PROG: $outcome:

  1. Keys. Without the passphrase (or key file) the recordings are gone for good.
     - Keep the passphrase in the organisation's password safe; add a second one for recovery:
         cryptsetup luksAddKey $DEVICE
     - Back up the LUKS header (a damaged header loses everything) and store it off the machine:
         cryptsetup luksHeaderBackup $DEVICE --header-backup-file callrec_data-luks-header.img

  2. Unattended boot. As set up, the volume asks for its passphrase at boot ('nofail': the machine
     boots anyway; callrecd waits, RequiresMountsFor=$MOUNTPOINT). Unlock it over SSH with:
         systemd-tty-ask-password-agent     (or: systemctl start $CRYPT_UNIT)
         mount $MOUNTPOINT && systemctl start callrecd
     Option: TPM2 unlock (the key is sealed to this machine's firmware and Secure Boot state):
         systemd-cryptenroll --tpm2-device=auto --tpm2-pcrs=7 $DEVICE
       then change the crypttab line's options to luks,nofail,tpm2-device=auto and run
         systemctl daemon-reload
       A firmware or Secure Boot change makes the TPM refuse: keep the passphrase slot.
     Option: a key file (--key-file) only if the root filesystem is itself encrypted.

  3. Old data. Anything that was in $MOUNTPOINT before is still on the unencrypted disk: copy it
     in (as $DATA_USER), then delete the old copy and consider that disk's free space exposed.

  4. Check. 'lsblk -o NAME,TYPE,MOUNTPOINT' shows a crypt device under $MOUNTPOINT, and the
     encrypted-disk check (daemon/ops/encryptedDisk.ts) reports it as encrypted. dataDir in
     /etc/callrec/config.yaml must be $MOUNTPOINT or a directory under it.$unit_note

  $written:
    $CRYPTTAB: $crypttab_line
    $FSTAB:    $fstab_line

See docs/security.md.
EOF
