#!/usr/bin/env bash
# Makes this Raspberry Pi a USB keyboard (a HID gadget through configfs and libcomposite), so the edge
# agent can type a service user ID into the counter PC it is plugged into (edge/handoff/keyboard).
#
#   sudo provisioning/hid-gadget/setup.sh        then the agent writes boot reports to /dev/hidg0
#
# Needs the USB port in device (OTG) mode: dtoverlay=dwc2 in config.txt and dwc2 in the modules
# (README.md beside this file). Idempotent: a gadget already set up and bound is left as it is; one
# set up but unbound (cable out, or after teardown of the binding) is bound again. Undo: teardown.sh.
#
# Environment (all optional):
#   MYKEY_HID_GADGET     gadget directory name                    (mykey-keyboard)
#   MYKEY_HID_UDC        USB device controller to bind to         (the first in /sys/class/udc)
#   MYKEY_HID_VENDOR_ID  idVendor                                  (0x1d6b, Linux Foundation)
#   MYKEY_HID_PRODUCT_ID idProduct                                 (0x0104, Multifunction Composite Gadget)
#   MYKEY_HID_SERIAL     iSerialNumber                             (the Pi's serial number, or 0)
#   MYKEY_HID_GROUP      group given read/write on /dev/hidgN      (none: root only)
#   MYKEY_HID_CONFIGFS   configfs mount point                      (/sys/kernel/config)
#   MYKEY_HID_UDC_DIR    where UDCs are listed                     (/sys/class/udc)
#   MYKEY_HID_DEV        where the hidg device nodes appear        (/dev)
set -euo pipefail

CONFIGFS="${MYKEY_HID_CONFIGFS:-/sys/kernel/config}"
UDC_DIR="${MYKEY_HID_UDC_DIR:-/sys/class/udc}"
DEV_DIR="${MYKEY_HID_DEV:-/dev}"
NAME="${MYKEY_HID_GADGET:-mykey-keyboard}"
VENDOR_ID="${MYKEY_HID_VENDOR_ID:-0x1d6b}"
PRODUCT_ID="${MYKEY_HID_PRODUCT_ID:-0x0104}"
SERIAL="${MYKEY_HID_SERIAL:-$(tr -d '\0' </proc/device-tree/serial-number 2>/dev/null || echo 0)}"
GROUP="${MYKEY_HID_GROUP:-}"
G="$CONFIGFS/usb_gadget/$NAME"
FUNCTION="hid.usb0"

# The boot keyboard report descriptor; the same bytes as BOOT_KEYBOARD_REPORT_DESCRIPTOR in
# edge/handoff/keyboard/hid-report.ts, where each item is annotated (a test compares the two).
# HID 1.11 Appendix E.6 with the key array's maximum raised from 101 to 255 for the JIS keys
# ろ (0x87) and ¥ (0x89).
REPORT_DESC="05 01 09 06 a1 01 05 07 19 e0 29 e7 15 00 25 01 75 01 95 08 81 02 95 01 75 08 81 03 \
95 05 75 01 05 08 19 01 29 05 91 02 95 01 75 03 91 03 95 06 75 08 15 00 26 ff 00 05 07 19 00 29 ff \
81 00 c0"

say() { printf 'hid-gadget: %s\n' "$*"; }
die() { printf 'hid-gadget: %s\n' "$*" >&2; exit 1; }

if [ ! -d "$CONFIGFS/usb_gadget" ]; then
  modprobe libcomposite 2>/dev/null || true
  if [ ! -d "$CONFIGFS" ] || ! mountpoint -q "$CONFIGFS" 2>/dev/null; then
    mount -t configfs none "$CONFIGFS" 2>/dev/null || true
  fi
  [ -d "$CONFIGFS/usb_gadget" ] || die "no $CONFIGFS/usb_gadget: libcomposite is not available (is this a Pi with dtoverlay=dwc2? see README.md)"
fi

if [ -d "$G" ] && [ -n "$(cat "$G/UDC" 2>/dev/null || true)" ]; then
  say "$NAME is already set up and bound to $(cat "$G/UDC")"
  exit 0
fi

if [ ! -d "$G/functions/$FUNCTION" ]; then
  say "creating gadget $NAME"
  mkdir -p "$G"
  echo "$VENDOR_ID" >"$G/idVendor"
  echo "$PRODUCT_ID" >"$G/idProduct"
  echo 0x0100 >"$G/bcdDevice" # device release 1.0.0
  echo 0x0200 >"$G/bcdUSB"    # USB 2.0
  mkdir -p "$G/strings/0x409" # US English string descriptors
  echo "$SERIAL" >"$G/strings/0x409/serialnumber"
  echo "MyKey Platform" >"$G/strings/0x409/manufacturer"
  echo "MyKey hand-off keyboard" >"$G/strings/0x409/product"

  mkdir -p "$G/configs/c.1/strings/0x409"
  echo "Boot keyboard" >"$G/configs/c.1/strings/0x409/configuration"
  echo 100 >"$G/configs/c.1/MaxPower" # mA

  mkdir -p "$G/functions/$FUNCTION"
  echo 1 >"$G/functions/$FUNCTION/protocol"      # HID 1.11 4.3: 1 = keyboard
  echo 1 >"$G/functions/$FUNCTION/subclass"      # HID 1.11 4.2: 1 = boot interface
  echo 8 >"$G/functions/$FUNCTION/report_length" # modifiers, reserved, six keys
  # With no_out_endpoint the host's LED reports (Caps Lock...) come by SET_REPORT on ep0 and overwrite each other,
  # instead of queueing on an interrupt OUT endpoint nobody reads (f_hid of recent kernels; older ones
  # lack the attribute and keep the endpoint, which only holds up the host's LED updates).
  if [ -e "$G/functions/$FUNCTION/no_out_endpoint" ]; then echo 1 >"$G/functions/$FUNCTION/no_out_endpoint"; fi
  # shellcheck disable=SC2059 # the format is built from the hex bytes on purpose
  printf "$(printf '\\x%s' $REPORT_DESC)" >"$G/functions/$FUNCTION/report_desc"
fi
[ -e "$G/configs/c.1/$FUNCTION" ] || ln -s "$G/functions/$FUNCTION" "$G/configs/c.1/"

UDC="${MYKEY_HID_UDC:-}"
if [ -z "$UDC" ]; then
  UDC="$(ls "$UDC_DIR" 2>/dev/null | head -n 1 || true)"
fi
[ -n "$UDC" ] || die "no USB device controller in $UDC_DIR: set dtoverlay=dwc2 in config.txt, reboot, and use the OTG port (README.md)"
echo "$UDC" >"$G/UDC"
say "bound $NAME to $UDC"

if [ -n "$GROUP" ]; then
  # The hidg node appears once the function is bound; its minor number follows the function order.
  for _ in $(seq 1 50); do
    [ -n "$(ls "$DEV_DIR"/hidg* 2>/dev/null || true)" ] && break
    sleep 0.1
  done
  for node in "$DEV_DIR"/hidg*; do
    [ -e "$node" ] || continue
    chgrp "$GROUP" "$node" && chmod 0660 "$node"
    say "$node is read/write for group $GROUP"
  done
fi
