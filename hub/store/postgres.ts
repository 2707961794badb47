// PostgreSQL store (step 2).
import { MyKeyError } from '../../shared/errors.ts';
import type { Store } from './store.ts';

export async function openPostgresStore(_url: string): Promise<Store> {
  throw new MyKeyError('config_invalid', 'PostgreSQL is not supported yet');
}
