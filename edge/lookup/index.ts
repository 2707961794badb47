// Touch-and-go lookup (マイキーID照会): the pure decision and the touch path around it.
export {
  decide,
  freshness,
  identityKey,
  CLOCK_BACKWARDS_TOLERANCE_MS,
  type Answer,
  type HealthView,
  type LookupDecision,
  type LookupInput,
  type MappingCache,
  type RefusalReason,
  type StalenessPolicy,
  type SyncState,
  type TouchIdentity,
} from './decide.ts';
export { certFields, certIdentityOf } from './cert-key.ts';
export { touchKeys } from './touch-keys.ts';
export { TouchLookup, type TouchLookupDeps, type TouchCounters } from './touch-lookup.ts';
export { TouchDesk, type TouchSource, type RegistrationSink } from './touch-desk.ts';
