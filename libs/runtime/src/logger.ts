import { context, trace } from '@opentelemetry/api';
import { redactForLog } from './redact';

/** Log levels, most verbose first. */
export const LogLevel = {
  Debug: 'debug',
  Info: 'info',
  Warn: 'warn',
  Error: 'error',
  Silent: 'silent',
} as const;
export type LogLevel = (typeof LogLevel)[keyof typeof LogLevel];

const RANK: Record<LogLevel, number> = { debug: 10, info: 20, warn: 30, error: 40, silent: 100 };

export type LogFields = Record<string, unknown>;

/** Where log lines go; one JSON object per line. */
export type LogSink = (line: string) => void;

const stdoutSink: LogSink = (line) => {
  process.stdout.write(`${line}\n`);
};

/**
 * Structured JSON logger: one line per event with `time`, `level`, `msg` and the
 * bound fields (service, …). A line written while a span is active (inside a
 * traced gRPC call) also carries its `traceId` and `spanId`. Never pass pixel
 * data, request payloads or patient identifiers as fields.
 */
export class Logger {
  constructor(
    private readonly level: LogLevel = LogLevel.Info,
    private readonly fields: LogFields = {},
    private readonly sink: LogSink = stdoutSink,
  ) {}

  /** A logger that adds `fields` to every line. */
  child(fields: LogFields): Logger {
    return new Logger(this.level, { ...this.fields, ...fields }, this.sink);
  }

  debug(msg: string, fields?: LogFields): void {
    this.write(LogLevel.Debug, msg, fields);
  }

  info(msg: string, fields?: LogFields): void {
    this.write(LogLevel.Info, msg, fields);
  }

  warn(msg: string, fields?: LogFields): void {
    this.write(LogLevel.Warn, msg, fields);
  }

  error(msg: string, fields?: LogFields): void {
    this.write(LogLevel.Error, msg, fields);
  }

  private write(level: LogLevel, msg: string, fields?: LogFields): void {
    if (RANK[level] < RANK[this.level]) return;
    const record = { time: new Date().toISOString(), level, msg, ...activeTraceIds(), ...this.fields, ...fields };
    this.sink(JSON.stringify(record, errorReplacer));
  }
}

/** Errors serialise as name/message/code (and their cause), not as `{}`; the message without quoted values or paths ({@link redactForLog}). */
function errorReplacer(_key: string, value: unknown): unknown {
  if (value instanceof Error) {
    const out: LogFields = { name: value.name, message: redactForLog(value.message) };
    const code = (value as { code?: unknown }).code;
    if (code !== undefined) out['code'] = code;
    if (value.cause !== undefined) out['cause'] = value.cause;
    return out;
  }
  if (typeof value === 'bigint') return value.toString();
  return value;
}

/** `traceId`/`spanId` of the active span, or nothing outside a recorded trace. */
function activeTraceIds(): { traceId?: string; spanId?: string } {
  const spanContext = trace.getSpanContext(context.active());
  if (!spanContext || !trace.isSpanContextValid(spanContext)) return {};
  return { traceId: spanContext.traceId, spanId: spanContext.spanId };
}
