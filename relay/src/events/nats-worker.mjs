// Entry of the relay's NATS worker thread (nats-link.ts). A worker thread does not inherit tsx's
// module hooks from `node --import tsx` (privatenumber/tsx#354), so it registers them itself
// before loading the TypeScript.
import { register } from 'tsx/esm/api';

register();
await import('./nats-worker.ts');
