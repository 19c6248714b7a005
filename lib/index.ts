export { RedisPubSubServer, type RedisPubSubHandlerExtras } from './server.js';
export { RedisPubSubClient } from './client.js';
export { RedisPubSubContext } from './context.js';
export { REDIS_PUBSUB_TRANSPORT, RedisPubSubStatus } from './constants.js';
export type { RedisPubSubOptions, HeartbeatOptions, RetryOptions, OfflineQueueOptions } from './options.js';
export type { RedisPubSubStats, RedisPubSubEvents, RedisPubSubEventName, MessageCounters } from './pubsub-link.js';
export type { ConnectionStats, ConnectionRole, ConnectionState } from './managed-connection.js';
export { transportRegistry, type MonitoredTransport } from './transport-registry.js';
