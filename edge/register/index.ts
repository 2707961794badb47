// Counter registration (サービスID登録).
export { RegistrationFlow, type RegistrationFlowOptions } from './registration.ts';
export { HttpDeviceApi, type DeviceApi, type CounterLink, type LinkIdentity, type HttpDeviceApiOptions } from './device-api.ts';
export { readerSigner, type HolderSigner } from './card-signer.ts';
export { CommandSocket } from './command-socket.ts';
export type { RegistrationView, RegistrationStep } from './view.ts';
