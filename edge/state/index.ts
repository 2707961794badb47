// Public entry point of the edge's state directory.
export { EdgeState, type CounterName, type DeviceIdentity, type EdgeStateOptions, type OpenReport } from './edge-state.ts';
