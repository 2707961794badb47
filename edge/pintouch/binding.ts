// Whether the certificate read off a card belongs to the MyKey ID the card carries, from what the
// edge holds (#14). The hub sends one change-log entry per link that maps BOTH keyed identities of the
// MyKey ID to the service ID: `mykey:<MyKey ID>` and `cert:<its current certificate>` (hub/links
// keysOf, shared/sync.ts). So the certificate is bound to the MyKey ID exactly when its keyed identity
// answers the same service ID as the MyKey ID's, and a service ID is linked to one MyKey ID per
// service (hub/store links_service_user). A MyKey ID written onto another card meets a certificate
// that answers nothing, or another holder's service ID: refused. Suspension, revocation and unlinking
// purge both keys, so the revocation state the edge holds applies to both ways of reading a card.
// Pure: the keyed identities are derived before (edge/lookup/touch-keys.ts).
import { decide, type LookupDecision, type LookupInput, type TouchIdentity } from '../lookup/decide.ts';

/** What the binding says about one PIN-checked touch. */
export type BindingVerdict =
  /** Answer now, no PIN asked: refused by the staleness policy, or not linked (nothing to hand over). */
  | { verdict: 'answer'; decision: LookupDecision }
  /** The card's certificate is not the one bound to the MyKey ID it carries. */
  | { verdict: 'unbound' }
  /** Linked and bound: the PIN and the card's signature decide. `decision` is what is handed over then. */
  | { verdict: 'pin'; decision: LookupDecision };

export interface BindingInput extends Omit<LookupInput, 'identity' | 'keys'> {
  identity: TouchIdentity;
  /** The user-authentication certificate read in the same touch. */
  certDer: Uint8Array;
  /** Memory-hard keys of the identity and of the certificate (touchKeys). */
  identityKeys?: readonly string[];
  certKeys?: readonly string[];
}

const answerOf = (d: LookupDecision) => (d.outcome === 'degraded' ? d.answer : d);

/** Decides the binding of one touch (see the header). */
export function bindCertificate(input: BindingInput): BindingVerdict {
  const { identity, certDer, identityKeys, certKeys, ...rest } = input;
  const d = decide({ ...rest, identity, keys: identityKeys });
  if (d.outcome === 'refused') return { verdict: 'answer', decision: d };
  const a = answerOf(d);
  if (a.outcome !== 'linked') return { verdict: 'answer', decision: d };
  // Certificate mode: the certificate is the identity itself (the flow read it in the same session).
  if (identity.kind === 'cert') return { verdict: 'pin', decision: d };
  const c = answerOf(decide({ ...rest, identity: { kind: 'cert', certDer }, keys: certKeys }));
  if (c.outcome !== 'linked' || c.serviceUserId !== a.serviceUserId) return { verdict: 'unbound' };
  return { verdict: 'pin', decision: d };
}
