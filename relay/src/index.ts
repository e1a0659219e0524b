export { loadRelayConfig, type RelayConfig, relayConfigSchema } from './config.ts';
export { createRelay, type Relay, TUNNEL_PATH } from './server.ts';
export { loadNativeUws, NativeUwsUnavailableError } from './uws.ts';
