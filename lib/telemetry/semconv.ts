import type { Attributes } from '@opentelemetry/api';

/** Scope name of the tracer and meter. */
export const INSTRUMENTATION_SCOPE = 'nestjs-redis-pubsub';

/** OpenTelemetry messaging semantic conventions (operation type `send`, as renamed from `publish` in semconv 1.28). */
export const ATTR = {
  system: 'messaging.system',
  destinationName: 'messaging.destination.name',
  destinationTemplate: 'messaging.destination.template',
  destinationTemporary: 'messaging.destination.temporary',
  operationType: 'messaging.operation.type',
  operationName: 'messaging.operation.name',
  messageId: 'messaging.message.id',
  conversationId: 'messaging.message.conversation_id',
  bodySize: 'messaging.message.body.size',
  errorType: 'error.type',
  /** Redis Cluster: the shard's primary. */
  serverAddress: 'server.address',
  serverPort: 'server.port',
  // What only this transport knows.
  instance: 'redis_pubsub.instance',
  kind: 'redis_pubsub.kind',
  connection: 'redis_pubsub.connection',
  state: 'redis_pubsub.state',
  outcome: 'redis_pubsub.outcome',
  reason: 'redis_pubsub.reason',
} as const;

export const MESSAGING_SYSTEM = 'redis';

export type OperationName = 'send' | 'process';

/** Where a message goes or comes from. */
export interface Destination {
  /** The concrete channel. */
  name: string;
  /** Low-cardinality form: the PSUBSCRIBE glob, or the reply channels' template. */
  template?: string;
  /** Reply channels: one per client instance, with a random name. */
  temporary?: boolean;
}

/** Span names and metric attributes use the template when there is one (semconv: `{operation} {destination}`). */
export function destinationLabel(destination: Destination): string {
  return destination.template ?? destination.name;
}

export function spanAttributes(destination: Destination, operation: OperationName): Attributes {
  const attributes: Attributes = {
    [ATTR.system]: MESSAGING_SYSTEM,
    [ATTR.operationType]: operation,
    [ATTR.operationName]: operation,
    [ATTR.destinationName]: destination.name,
  };
  if (destination.template !== undefined) attributes[ATTR.destinationTemplate] = destination.template;
  if (destination.temporary) attributes[ATTR.destinationTemporary] = true;
  return attributes;
}

/** Metric attributes stay low-cardinality: the template instead of a concrete channel when there is one. */
export function metricAttributes(destination: Destination, operation: OperationName): Attributes {
  return destination.template !== undefined
    ? { [ATTR.system]: MESSAGING_SYSTEM, [ATTR.operationName]: operation, [ATTR.destinationTemplate]: destination.template }
    : { [ATTR.system]: MESSAGING_SYSTEM, [ATTR.operationName]: operation, [ATTR.destinationName]: destination.name };
}

/** `error.type`: the error's class name (low cardinality), `_OTHER` for thrown non-errors. */
export function errorType(error: unknown): string {
  if (error instanceof Error) return error.constructor.name || 'Error';
  return '_OTHER';
}
