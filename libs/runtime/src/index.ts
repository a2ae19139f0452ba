export { ConfigError, HelpRequested, loadConfig, helpText, flagName, envName, opt } from './config';
export type { ConfigOf, LoadOptions, Option, Schema } from './config';
export { ErrorCode, PurifyError, errorCodeOf, isServiceError, toGrpcError } from './errors';
export { MessageReader, unary, serverStream, bidiStream } from './handlers';
export type { CallContext, HandlerEnv } from './handlers';
export { Logger, LogLevel } from './logger';
export type { LogFields, LogSink } from './logger';
export { DEFAULT_PORTS, HEALTH_SERVICE, REFLECTION_SERVICES, serverSchema, startServer } from './server';
export type { DomainHandlers, RunningServer, ServerSettings, StartServerOptions } from './server';
export { IDEMPOTENT_METHODS, channelOptions, createClient, isIdempotent, isReplicaFailure, targetFor, unaryCall, withReplicaRetry } from './client';
export type { CallSettings, ClientSettings, ReplicaRetrySettings } from './client';
export { checkHealth, listServices, waitUntilServing } from './probe';
export type { ProbeTransport, ServingStatus } from './probe';
export {
  checkClientTls,
  checkServerTls,
  clientCredentials,
  clientTlsFromEnv,
  clientTlsFromSettings,
  clientTlsSchema,
  defaultClientTls,
  isLoopbackHost,
  serverCredentials,
  setDefaultClientTls,
} from './tls';
export type { ClientTlsSettings, ServerTlsSettings } from './tls';
export { SpanAttr, addSpanAttributes, runInCallTrace, startSpan, traceIds, withSpan } from './tracing';
export type { OpenSpan, SpanAttributeValue, SpanAttributes, StartSpanOptions, WithSpanOptions } from './tracing';
export { MetricName, serviceMetrics } from './metrics';
export type { VersionRef } from './metrics';
export { freeLoopbackPort } from './free-port';
export { MemoryBudget } from './memory-budget';
export type { MemoryBudgetSettings, Release } from './memory-budget';
export { healthcheck } from './healthcheck';
export type { HealthcheckResult } from './healthcheck';
export { ExitCode, configOrExit, runService, startInProcess } from './service-main';
export { redactForLog } from './redact';
export { serviceMain, startServiceProcess } from './service-process';
export type { ServiceProcess, ServiceProcessOptions } from './service-process';
export type { ReadyMessage, ServiceDefinitionSpec, ServiceSchema } from './service-main';
export * as validate from './validate';
export { readSetup } from './streams';
export type { SetupOrChunk } from './streams';
export { parseSamples, scrape, scrapeText, valuesOf, type Sample } from './prometheus-scrape';
