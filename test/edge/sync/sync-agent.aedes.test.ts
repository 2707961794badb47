import { defineSyncTests } from './helpers/sync-suite.ts';

defineSyncTests('aedes');
