/** The cluster section's "ours" subscriber: RedisPubSubServer on a cluster in a Nest microservice, in this process. */
import 'reflect-metadata';
import { Controller, Module, type LogLevel } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import { EventPattern, Payload } from '@nestjs/microservices';
import { RedisPubSubServer } from '../../lib/index.js';
import type { ClusterSubscriber, SequencedData } from '../sections/cluster.js';

const LOG_LEVELS: LogLevel[] | false = process.env.BENCH_VERBOSE ? ['log', 'error', 'warn'] : false;

/**
 * A controller with one `@EventPattern(channel)` handler per channel (the channels are chosen per
 * trial, so the decorators are applied here rather than written on a class).
 */
function controllerFor(channels: string[], onMessage: (channel: string, data: SequencedData) => void): new () => object {
  class ClusterBenchController {}
  channels.forEach((channel, i) => {
    const key = `on${i}`;
    Object.defineProperty(ClusterBenchController.prototype, key, {
      value: (data: SequencedData) => onMessage(channel, data),
      writable: true,
      configurable: true,
    });
    const descriptor = Object.getOwnPropertyDescriptor(ClusterBenchController.prototype, key)!;
    Payload()(ClusterBenchController.prototype, key, 0);
    EventPattern<string>(channel)(ClusterBenchController.prototype, key, descriptor);
  });
  Controller()(ClusterBenchController);
  return ClusterBenchController;
}

export async function startClusterApp(
  seeds: { host: string; port: number }[],
  channels: string[],
  onMessage: (channel: string, data: SequencedData) => void,
): Promise<ClusterSubscriber> {
  @Module({ controllers: [controllerFor(channels, onMessage)] })
  class ClusterBenchModule {}
  const server = new RedisPubSubServer({ cluster: { nodes: seeds } });
  const app = await NestFactory.createMicroservice(ClusterBenchModule, { strategy: server, logger: LOG_LEVELS });
  await app.listen();
  return { close: () => app.close() };
}
