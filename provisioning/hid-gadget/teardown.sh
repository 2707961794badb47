#!/usr/bin/env bash
# Undoes setup.sh: unbinds the keyboard gadget and removes it from configfs, in the reverse order of
# creation (configfs refuses to remove a directory that is still linked or bound). Idempotent: a
# gadget that is not there is fine. Same environment as setup.sh (MYKEY_HID_GADGET, MYKEY_HID_CONFIGFS).
set -euo pipefail

CONFIGFS="${MYKEY_HID_CONFIGFS:-/sys/kernel/config}"
NAME="${MYKEY_HID_GADGET:-mykey-keyboard}"
G="$CONFIGFS/usb_gadget/$NAME"
FUNCTION="hid.usb0"

if [ ! -d "$G" ]; then
  printf 'hid-gadget: %s is not set up\n' "$NAME"
  exit 0
fi
if [ -n "$(cat "$G/UDC" 2>/dev/null || true)" ]; then
  echo "" >"$G/UDC" # unbind: the host sees the keyboard unplugged
fi
[ -L "$G/configs/c.1/$FUNCTION" ] && rm "$G/configs/c.1/$FUNCTION"
[ -d "$G/configs/c.1/strings/0x409" ] && rmdir "$G/configs/c.1/strings/0x409"
[ -d "$G/configs/c.1" ] && rmdir "$G/configs/c.1"
[ -d "$G/functions/$FUNCTION" ] && rmdir "$G/functions/$FUNCTION"
[ -d "$G/strings/0x409" ] && rmdir "$G/strings/0x409"
rmdir "$G"
printf 'hid-gadget: removed %s\n' "$NAME"
