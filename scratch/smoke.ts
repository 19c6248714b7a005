import 'reflect-metadata';
import { Controller, Module } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import { EventPattern, MessagePattern, Payload } from '@nestjs/microservices';
import { RedisPubSubClient, RedisPubSubServer } from '../lib/index.js';
import { firstValueFrom } from 'rxjs';

const got: string[] = [];
@Controller()
class C {
  @EventPattern<string>('alpha') a(@Payload() d: unknown) { got.push('alpha:' + JSON.stringify(d)); }
  @EventPattern<string>('beta') b(@Payload() d: unknown) { got.push('beta:' + JSON.stringify(d)); }
  @EventPattern<string>('gamma') g(@Payload() d: unknown) { got.push('gamma:' + JSON.stringify(d)); }
  @EventPattern<string>('pat.*', { psubscribe: true } as never) p(@Payload() d: unknown) { got.push('pat:' + JSON.stringify(d)); }
  @MessagePattern<string>('sum') s(@Payload() d: number[]) { return d.reduce((a, b) => a + b, 0); }
}
@Module({ controllers: [C] }) class M {}
const cluster = { nodes: [{ host: '127.0.0.1', port: 17001 }] };
const app = await NestFactory.createMicroservice(M, { strategy: new RedisPubSubServer({ cluster }), logger: ['log','error','warn'] });
await app.listen();
const server = app.get as never;
const client = new RedisPubSubClient({ cluster });
await client.connect();
for (const ch of ['alpha', 'beta', 'gamma', 'pat.x']) await firstValueFrom(client.emit(ch, { ch }));
console.log('sum', await firstValueFrom(client.send('sum', [1, 2, 3])));
await new Promise((r) => setTimeout(r, 300));
console.log(got);
console.log(JSON.stringify(client.getStats().cluster, null, 1));
await client.close();
await app.close();
