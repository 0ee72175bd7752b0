/**
 * An OTLP/HTTP trace receiver for tests: a real HTTP server on an ephemeral
 * port taking POST /v1/traces as http/json or http/protobuf. Protobuf bodies
 * are decoded by protobufjs from the schema in otlp-trace.proto (the fields
 * of OTLP's trace export request that this receiver reads), never by hand.
 */
import { createServer, type IncomingHttpHeaders, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { fileURLToPath } from 'node:url';
import protobuf from 'protobufjs';

type AnyValue = { stringValue?: string; intValue?: string | number; doubleValue?: number; boolValue?: boolean };
interface KeyValue {
  key: string;
  value?: AnyValue;
}
interface OtlpSpan {
  traceId: string;
  spanId: string;
  parentSpanId?: string;
  name: string;
  kind: number;
  attributes?: KeyValue[];
  links?: { traceId: string; spanId: string; attributes?: KeyValue[] }[];
  status?: { code?: number | string; message?: string };
}
interface OtlpRequest {
  resourceSpans?: { resource?: { attributes?: KeyValue[] }; scopeSpans?: { spans?: OtlpSpan[] }[] }[];
}
const SCHEMA = fileURLToPath(new URL('otlp-trace.proto', import.meta.url));
const ExportTraceServiceRequest = protobuf.loadSync(SCHEMA).lookupType('formdata.test.otlp.ExportTraceServiceRequest');

/** Decodes an http/protobuf export body into the shape OTLP/JSON gives (ids still base64: see hex()). */
function decodeProtobuf(body: Uint8Array): OtlpRequest {
  const message = ExportTraceServiceRequest.decode(body);
  return ExportTraceServiceRequest.toObject(message, {
    longs: String,
    bytes: String,
    enums: Number,
    defaults: false,
  }) as OtlpRequest;
}

/** Span kinds as OTLP numbers them. */
export const KIND = { internal: 1, server: 2, client: 3, producer: 4, consumer: 5 } as const;
/** Status codes as OTLP numbers them. */
export const STATUS = { unset: 0, ok: 1, error: 2 } as const;

export type AttributeValue = string | number | boolean;

/** A received span, the same whichever encoding brought it. */
export interface ReceivedSpan {
  traceId: string;
  spanId: string;
  /** Empty for a root span. */
  parentSpanId: string;
  name: string;
  kind: number;
  attributes: Record<string, AttributeValue>;
  links: { traceId: string; spanId: string }[];
  status: { code: number; message: string };
  resource: Record<string, AttributeValue>;
  /** Encoding of the request that brought it. */
  protocol: 'http/json' | 'http/protobuf';
}

export interface OtlpReceiver {
  /** Base URL, for OTEL_EXPORTER_OTLP_ENDPOINT. */
  url: string;
  spans: ReceivedSpan[];
  /** Headers, encoding and span count of each export request, and when it arrived (Date.now()). */
  requests: { headers: IncomingHttpHeaders; protocol: string; spans: number; at: number }[];
  close(): Promise<void>;
}

function hex(id: string | undefined, protocol: string): string {
  if (!id) return '';
  // protobuf bytes come as base64 (toObject bytes: String); OTLP/JSON writes ids as hex.
  return protocol === 'http/protobuf' ? Buffer.from(id, 'base64').toString('hex') : id.toLowerCase();
}

function attributes(list: KeyValue[] | undefined): Record<string, AttributeValue> {
  const out: Record<string, AttributeValue> = {};
  for (const { key, value } of list ?? []) {
    if (!value) continue;
    if (value.stringValue !== undefined && value.stringValue !== null) out[key] = value.stringValue;
    else if (value.intValue !== undefined && value.intValue !== null) out[key] = Number(value.intValue);
    else if (value.doubleValue !== undefined && value.doubleValue !== null) out[key] = value.doubleValue;
    else if (value.boolValue !== undefined && value.boolValue !== null) out[key] = value.boolValue;
  }
  return out;
}

function normalise(request: OtlpRequest, protocol: 'http/json' | 'http/protobuf'): ReceivedSpan[] {
  const spans: ReceivedSpan[] = [];
  for (const rs of request.resourceSpans ?? []) {
    const resource = attributes(rs.resource?.attributes);
    for (const ss of rs.scopeSpans ?? []) {
      for (const s of ss.spans ?? []) {
        spans.push({
          traceId: hex(s.traceId, protocol),
          spanId: hex(s.spanId, protocol),
          parentSpanId: hex(s.parentSpanId, protocol),
          name: s.name,
          kind: Number(s.kind),
          attributes: attributes(s.attributes),
          links: (s.links ?? []).map((l) => ({ traceId: hex(l.traceId, protocol), spanId: hex(l.spanId, protocol) })),
          status: { code: Number(s.status?.code ?? 0), message: s.status?.message ?? '' },
          resource,
          protocol,
        });
      }
    }
  }
  return spans;
}

/** Starts a receiver on 127.0.0.1 and an ephemeral port. */
export async function startOtlpReceiver(): Promise<OtlpReceiver> {
  const spans: ReceivedSpan[] = [];
  const requests: OtlpReceiver['requests'] = [];
  const server: Server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const body = Buffer.concat(chunks);
      const type = req.headers['content-type'] ?? '';
      if (req.method !== 'POST' || req.url !== '/v1/traces') {
        res.writeHead(404).end();
        return;
      }
      try {
        if (type.startsWith('application/x-protobuf')) {
          const received = normalise(decodeProtobuf(body), 'http/protobuf');
          spans.push(...received);
          requests.push({ headers: req.headers, protocol: 'http/protobuf', spans: received.length, at: Date.now() });
          res.writeHead(200, { 'Content-Type': 'application/x-protobuf' }).end();
        } else if (type.startsWith('application/json')) {
          const received = normalise(JSON.parse(body.toString('utf8')) as OtlpRequest, 'http/json');
          spans.push(...received);
          requests.push({ headers: req.headers, protocol: 'http/json', spans: received.length, at: Date.now() });
          res.writeHead(200, { 'Content-Type': 'application/json' }).end('{}');
        } else res.writeHead(415).end();
      } catch {
        res.writeHead(400).end();
      }
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    spans,
    requests,
    close: () => new Promise((resolve) => server.close(() => resolve())),
  };
}
