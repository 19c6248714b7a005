import { Injectable } from '@nestjs/common';

export interface Order {
  id: string;
  item: string;
  quantity: number;
  createdAt: string;
}

export interface ProcessedOrder extends Order {
  processedAt: string;
}

/** In-memory record of what the event handlers processed (the sample has no database). */
@Injectable()
export class OrdersStore {
  /** Kept bounded so a long demo cannot grow the process without limit. */
  private static readonly MAX = 1_000;
  readonly processed: ProcessedOrder[] = [];
  /** Events seen by the `orders.*` pattern handler. */
  audited = 0;

  add(order: ProcessedOrder): void {
    this.processed.push(order);
    if (this.processed.length > OrdersStore.MAX) this.processed.shift();
  }
}
