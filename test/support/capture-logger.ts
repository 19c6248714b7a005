import { ConsoleLogger } from '@nestjs/common';

/** A Nest logger that records every line so tests can assert what was logged. */
export class CaptureLogger extends ConsoleLogger {
  readonly lines: Array<{ level: string; message: string; context?: string }> = [];

  constructor(private readonly echo = process.env.TEST_LOGS === '1') {
    super();
  }

  private record(level: string, message: unknown, rest: unknown[]): void {
    const context = typeof rest[rest.length - 1] === 'string' ? (rest[rest.length - 1] as string) : undefined;
    this.lines.push({ level, message: String(message), context });
  }

  override log(message: unknown, ...rest: unknown[]): void {
    this.record('log', message, rest);
    if (this.echo) super.log(message, ...(rest as []));
  }
  override error(message: unknown, ...rest: unknown[]): void {
    this.record('error', message, rest);
    if (this.echo) super.error(message, ...(rest as []));
  }
  override warn(message: unknown, ...rest: unknown[]): void {
    this.record('warn', message, rest);
    if (this.echo) super.warn(message, ...(rest as []));
  }
  override debug(message: unknown, ...rest: unknown[]): void {
    this.record('debug', message, rest);
  }
  override verbose(message: unknown, ...rest: unknown[]): void {
    this.record('verbose', message, rest);
  }

  errors(matching: string | RegExp): string[] {
    return this.lines
      .filter((line) => line.level === 'error' && (typeof matching === 'string' ? line.message.includes(matching) : matching.test(line.message)))
      .map((line) => line.message);
  }
}
