// A real OTLP/HTTP receiver on 127.0.0.1: `POST /v1/traces` and
// `POST /v1/metrics`, protobuf bodies (gzip too) decoded with protobufjs
// against the OTLP .proto files vendored in tests/otlp (from
// open-telemetry/opentelemetry-proto, Apache-2.0, as the opentelemetry-proto
// crate 0.33.1 ships them). It keeps every request, decoded to plain objects.

import { createServer } from 'node:http';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { gunzipSync } from 'node:zlib';

import protobuf from 'protobufjs';

const protos = join(dirname(fileURLToPath(import.meta.url)), 'otlp');
const root = new protobuf.Root();
root.resolvePath = (_origin, target) => join(protos, target);
root.loadSync(['opentelemetry/proto/collector/trace/v1/trace_service.proto', 'opentelemetry/proto/collector/metrics/v1/metrics_service.proto']);
const TraceRequest = root.lookupType('opentelemetry.proto.collector.trace.v1.ExportTraceServiceRequest');
const TraceResponse = root.lookupType('opentelemetry.proto.collector.trace.v1.ExportTraceServiceResponse');
const MetricsRequest = root.lookupType('opentelemetry.proto.collector.metrics.v1.ExportMetricsServiceRequest');
const MetricsResponse = root.lookupType('opentelemetry.proto.collector.metrics.v1.ExportMetricsServiceResponse');

const toObject = (type, message) => type.toObject(message, { longs: String, enums: String, bytes: Buffer, arrays: true });

/** An OTLP AnyValue as a JavaScript value. */
export function anyValue(value) {
  if (!value) return undefined;
  if ('stringValue' in value) return value.stringValue;
  if ('intValue' in value) return Number(value.intValue);
  if ('doubleValue' in value) return value.doubleValue;
  if ('boolValue' in value) return value.boolValue;
  if ('arrayValue' in value) return (value.arrayValue.values ?? []).map(anyValue);
  if ('kvlistValue' in value) return attributes(value.kvlistValue.values);
  if ('bytesValue' in value) return value.bytesValue;
  return undefined;
}

/** OTLP KeyValues as an object. */
export function attributes(list = []) {
  return Object.fromEntries(list.map((kv) => [kv.key, anyValue(kv.value)]));
}

export class OtlpReceiver {
  static async start() {
    const receiver = new OtlpReceiver();
    receiver.server = createServer((req, res) => {
      receiver.handle(req, res).catch((error) => {
        res.writeHead(400, { 'content-type': 'text/plain' });
        res.end(String(error?.message ?? error));
      });
    });
    await new Promise((resolve) => receiver.server.listen(0, '127.0.0.1', resolve));
    receiver.url = `http://127.0.0.1:${receiver.server.address().port}`;
    return receiver;
  }

  constructor() {
    /** Decoded ExportTraceServiceRequests. */
    this.traces = [];
    /** Decoded ExportMetricsServiceRequests. */
    this.metrics = [];
    /** Every request: path, headers and raw body (decompressed). */
    this.requests = [];
  }

  async handle(req, res) {
    const chunks = [];
    for await (const c of req) chunks.push(c);
    let body = Buffer.concat(chunks);
    if (req.headers['content-encoding'] === 'gzip') body = gunzipSync(body);
    this.requests.push({ path: req.url, headers: req.headers, body });
    if (req.method !== 'POST' || !/^application\/x-protobuf/.test(req.headers['content-type'] ?? '')) {
      res.writeHead(415, { 'content-type': 'text/plain' });
      res.end(`expected POST application/x-protobuf, got ${req.method} ${req.headers['content-type']}`);
      return;
    }
    let reply;
    if (req.url === '/v1/traces') {
      this.traces.push(toObject(TraceRequest, TraceRequest.decode(body)));
      reply = TraceResponse.encode(TraceResponse.create({})).finish();
    } else if (req.url === '/v1/metrics') {
      this.metrics.push(toObject(MetricsRequest, MetricsRequest.decode(body)));
      reply = MetricsResponse.encode(MetricsResponse.create({})).finish();
    } else {
      res.writeHead(404, { 'content-type': 'text/plain' });
      res.end(`no route ${req.url}`);
      return;
    }
    res.writeHead(200, { 'content-type': 'application/x-protobuf', 'content-length': reply.length });
    res.end(reply);
  }

  /** Every span received: { span, resource (attributes), scope }. */
  spans() {
    const out = [];
    for (const request of this.traces) {
      for (const rs of request.resourceSpans) {
        const resource = attributes(rs.resource?.attributes);
        for (const ss of rs.scopeSpans) {
          for (const span of ss.spans) out.push({ span, attributes: attributes(span.attributes), resource, scope: ss.scope });
        }
      }
    }
    return out;
  }

  /** Every metric received: { metric, resource (attributes), scope }. */
  metricList() {
    const out = [];
    for (const request of this.metrics) {
      for (const rm of request.resourceMetrics) {
        const resource = attributes(rm.resource?.attributes);
        for (const sm of rm.scopeMetrics) {
          for (const metric of sm.metrics) out.push({ metric, resource, scope: sm.scope });
        }
      }
    }
    return out;
  }

  close() {
    this.server.closeAllConnections?.();
    return new Promise((resolve) => this.server.close(resolve));
  }
}
