export * from './config/load-config.ts';
export * from './errors/catalogue.ts';
export * from './observability/logger.ts';
export * from './observability/metric-names.ts';
export * from './protocol/frame-batcher.ts';
export * from './protocol/frame-codec.ts';
export * from './protocol/messages.ts';
