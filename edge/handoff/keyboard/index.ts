// Hand-off as a keyboard: a USB HID gadget or a uinput device types the service user ID.
export { KeyboardTarget, DEFAULT_DEVICES, UINPUT_DEVICE_NAME, type KeyboardBackend, type KeyboardTargetOptions } from './keyboard-target.ts';
export { BOOT_KEYBOARD_REPORT_DESCRIPTOR, BOOT_REPORT_LENGTH, keyDownReport, keyUpReport, reportsOf } from './hid-report.ts';
export { encodeEvents, inputEventSize, keyDownEvents, keyUpEvents, EV_KEY, EV_SYN, SYN_REPORT, type InputEvent } from './input-event.ts';
export { LAYOUTS, NAMED_KEYS, strokeOf, typableCharacters, untypable, linuxKeyOf, type Layout, type NamedKey, type Stroke } from './layouts.ts';
export { charactersAllowedBy, keyboardPlanProblems, strokesOfKeys, strokesOfText, type KeySpec } from './plan.ts';
export { systemIoctl, uinputCreateCalls, uinputSetup, UI, type Ioctl } from './uinput.ts';
