// Public entry point of the edge's sync with the hub.
export { SyncAgent, type Health, type SyncAgentOptions, type SyncEvents, type SyncStats } from './sync-agent.ts';
export { HubClient, type HubClientOptions, type TlsMaterial } from './hub-client.ts';
export type { ContactAssessment } from './contact-clock.ts';
