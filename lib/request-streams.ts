import { Observable } from 'rxjs';

/** What the caller of a request stream ended by close() receives (the shape of Nest's RPC errors). */
export const STREAM_ENDED_BY_CLOSE = Object.freeze({ status: 'error', message: 'the stream was ended: the server is closing' });

/**
 * The request handlers that are streams: their Observable already emitted a value and has not
 * completed. Such a stream may never complete (Nest's broadcast pattern), so close() ends it at once
 * (its caller gets `STREAM_ENDED_BY_CLOSE`) instead of waiting `closeTimeoutMs`; a handler still
 * working on its first value is an ordinary in-flight handler and is drained.
 */
export class RequestStreams {
  private readonly open = new Set<() => void>();
  private ended = false;

  /** `control.stop`, once subscribed, unsubscribes the handler's Observable (when its caller is gone). */
  track<T>(source: Observable<T>, control: { stop?: () => void }): Observable<T> {
    return new Observable<T>((subscriber) => {
      control.stop = () => subscriber.complete();
      const end = () => subscriber.error(STREAM_ENDED_BY_CLOSE);
      let streaming = false;
      const subscription = source.subscribe({
        next: (value) => {
          subscriber.next(value);
          if (streaming) return;
          streaming = true;
          if (this.ended) end();
          else this.open.add(end);
        },
        error: (error: unknown) => subscriber.error(error),
        complete: () => subscriber.complete(),
      });
      return () => {
        this.open.delete(end);
        subscription.unsubscribe();
      };
    });
  }

  /** Ends every open stream, and any that starts streaming from now on; returns how many were open. */
  endAll(): number {
    this.ended = true;
    const ends = [...this.open];
    for (const end of ends) end();
    return ends.length;
  }
}
