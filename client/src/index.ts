export { tunnelUrl } from './cli.ts';
export type { RequestLog } from './local-proxy.ts';
export { backoffDelay, CLIENT_VERSION, TunnelClient, type TunnelClientOptions } from './tunnel-client.ts';
