// OpenTelemetry for Node.js: `AnosysSpanExporter` hands the finished spans
// of an OpenTelemetry tracer provider to the anosys engine, and the current
// context goes both ways (see `otelParent` and `withCallAsOtelSpan`).
//
// Spans become records through the engine's one mapping
// (anosys::sources::span, as for the Rust and Python exporters): name,
// ids, parent, times, kind, status and exception, events, links,
// attributes, scope and resource; a span with `gen_ai.operation.name`
// becomes an LLM-call record.
//
// `@opentelemetry/api` and `@opentelemetry/sdk-trace-base` are optional
// peer dependencies: nothing here loads them unless they are installed.

import { createRequire } from 'node:module';
import { join } from 'node:path';

import { markCaptured, native } from './runtime.js';

const KINDS = ['INTERNAL', 'SERVER', 'CLIENT', 'PRODUCER', 'CONSUMER'];
const CODES = ['UNSET', 'OK', 'ERROR'];

let api; // the @opentelemetry/api module, null when not installed

/**
 * `@opentelemetry/api` as the application sees it (resolved from the
 * working directory first, so the application's copy, with its context
 * manager, is the one used), or null.
 */
export function otelApi() {
  if (api !== undefined) return api;
  api = null;
  for (const from of [join(process.cwd(), 'noop.js'), import.meta.url]) {
    try {
      api = createRequire(from)('@opentelemetry/api');
      break;
    } catch {
      // not installed there
    }
  }
  return api;
}

/** The active OpenTelemetry span's ids, when there is a valid one. */
export function otelParent() {
  const otel = otelApi();
  if (!otel) return undefined;
  try {
    const cx = otel.trace.getSpanContext(otel.context.active());
    if (!cx || !otel.trace.isSpanContextValid(cx)) return undefined;
    return { traceId: cx.traceId, spanId: cx.spanId };
  } catch {
    return undefined;
  }
}

/**
 * Runs `fn` with the call `scope` ({ traceId, spanId }) as OpenTelemetry's
 * active span (a non-recording span with its ids), so that spans started
 * inside are its children. Without `@opentelemetry/api`, just runs `fn`.
 */
export function withCallAsOtelSpan(scope, fn) {
  const otel = otelApi();
  if (!otel) return fn();
  let cx;
  try {
    cx = otel.trace.setSpanContext(otel.context.active(), {
      traceId: scope.traceId,
      spanId: scope.spanId,
      traceFlags: otel.TraceFlags?.SAMPLED ?? 1,
      isRemote: false,
    });
  } catch {
    return fn();
  }
  return otel.context.with(cx, fn);
}

function nanos(time) {
  // HrTime: [seconds, nanoseconds]; past 2^53 only a string is exact.
  if (Array.isArray(time)) return (BigInt(time[0]) * 1_000_000_000n + BigInt(time[1])).toString();
  if (typeof time === 'number') return (BigInt(Math.round(time)) * 1_000_000n).toString(); // milliseconds
  return '0';
}

function attributes(attrs) {
  const out = {};
  for (const [key, value] of Object.entries(attrs ?? {})) {
    if (value !== undefined) out[key] = value;
  }
  return out;
}

/** A finished span (sdk-trace-base's ReadableSpan, 1.x or 2.x) in the engine's shape. */
export function spanObject(span) {
  const cx = span.spanContext();
  const parent = span.parentSpanContext?.spanId ?? span.parentSpanId;
  const scope = span.instrumentationScope ?? span.instrumentationLibrary;
  const start = nanos(span.startTime);
  return {
    name: span.name,
    kind: KINDS[span.kind] ?? 'INTERNAL',
    trace_id: cx.traceId,
    span_id: cx.spanId,
    parent_span_id: parent || null,
    trace_flags: cx.traceFlags ?? 1,
    trace_state: cx.traceState?.serialize?.() || null,
    start_time_unix_nano: start,
    end_time_unix_nano: span.endTime ? nanos(span.endTime) : start,
    attributes: attributes(span.attributes),
    dropped_attributes_count: span.droppedAttributesCount ?? 0,
    events: (span.events ?? []).map((e) => ({
      name: e.name,
      time_unix_nano: e.time ? nanos(e.time) : start,
      attributes: attributes(e.attributes),
    })),
    links: (span.links ?? [])
      .filter((l) => l.context?.traceId && l.context?.spanId)
      .map((l) => ({
        trace_id: l.context.traceId,
        span_id: l.context.spanId,
        trace_state: l.context.traceState?.serialize?.() || null,
        attributes: attributes(l.attributes),
      })),
    status: { code: CODES[span.status?.code ?? 0] ?? 'UNSET', description: span.status?.message ?? null },
    scope: scope?.name ? { name: scope.name, version: scope.version ?? null } : null,
    resource: span.resource?.attributes ? attributes(span.resource.attributes) : null,
  };
}

/**
 * An OpenTelemetry `SpanExporter` into the anosys engine. Exporting never
 * fails the application: a span that cannot be read is left out (said
 * once), and delivery is the engine's to count, as for every record.
 */
export class AnosysSpanExporter {
  export(spans, resultCallback) {
    try {
      const objects = [];
      for (const span of spans) {
        try {
          objects.push(spanObject(span));
        } catch {
          // a span of an unexpected shape: left out
        }
      }
      native.captureSpans(JSON.stringify(objects));
      markCaptured();
    } catch {
      // never into the application
    }
    resultCallback({ code: 0 }); // ExportResultCode.SUCCESS
  }

  async forceFlush() {
    await native.flush(30_000);
  }

  async shutdown() {
    // The engine's pipeline is the process's, shared with the rest of
    // anosys: deliver what it holds, but keep it running.
    await native.flush(5_000);
  }
}
