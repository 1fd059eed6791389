// Type declarations of the `anosys` package (ESM).

/** The pipeline's counters, as `flush()` and `counters()` report them. */
export interface Counters {
  /** Records handed to the pipeline. */
  captured: number;
  /** Records every sink accepted at once. */
  delivered: number;
  /** Records dropped (a full queue, a sink behind with no outbox). */
  dropped: number;
  /** Records a sink refused for good (an HTTP 4xx). */
  failed: number;
  /** Records sent again. */
  retried: number;
  /** Records a remote sink could not deliver at once, kept in the durable outbox on disk. */
  kept_in_outbox: number;
  /** Records sent from the outbox (kept by this process or an earlier one). */
  outbox_delivered: number;
  /** Records from the outbox refused for good or unreadable. */
  outbox_failed: number;
  /** Oldest records dropped from the outbox because it was full. */
  outbox_dropped: number;
  /** Records sent again after an attempt whose answer never came (the backend may have them twice). */
  duplicates: number;
  /** Records waiting in the outbox, as last seen. */
  in_outbox: number;
  /** Errors anosys met (never thrown into your code). */
  errors: number;
  /** Records left out by sampling (`ANOSYS_SAMPLE_RATE`); metrics still count them. */
  sampled_out: number;
  /** Records the `setBeforeSend` callback dropped. */
  filtered: number;
  /** Cost in US dollars of the LLM calls captured (those with a known price). */
  cost_usd: number;
  /** LLM calls whose model has no known price. */
  unpriced: number;
  [counter: string]: number | boolean;
}

/** What `flush()` resolves to. */
export interface FlushReport extends Counters {
  /** Records still queued when the wait ended. */
  pending: number;
  /** Whether everything captured before the call was handled. */
  completed: boolean;
}

/** Options of `instrumentOpenAI` and `AnosysOpenAILogger`. */
export interface OpenAIInstrumentationOptions {
  /**
   * Called on each call; what it returns (say `{ user_id, session_id }`) is
   * stored with the record. If it throws, the call goes on and the error is
   * recorded instead.
   */
  getUserContext?: () => unknown;
}

/** Options of `AnosysOpenAILogger`. */
export interface AnosysOpenAILoggerOptions extends OpenAIInstrumentationOptions {
  /**
   * The `openai` module (or its `OpenAI` class) to instrument, when it cannot
   * be found from the application's main script or working directory.
   */
  openai?: unknown;
}

/**
 * Records every call the `openai` package makes, for every `OpenAI` and
 * `AzureOpenAI` client (created before or after): `chat.completions.create`
 * (plain and streamed), `embeddings.create`, `images.generate` and
 * `responses.create`. Creating it again does not record twice.
 *
 * @example
 * ```js
 * import OpenAI from 'openai';
 * import { AnosysOpenAILogger } from 'anosys';
 *
 * new AnosysOpenAILogger({ getUserContext: () => ({ user_id: 'u-42' }) });
 * const client = new OpenAI();
 * await client.chat.completions.create({ model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'Hi' }] });
 * ```
 */
export class AnosysOpenAILogger {
  constructor(options?: AnosysOpenAILoggerOptions);
  /** Whether an `openai` package was found and instrumented. */
  readonly instrumented: boolean;
  /** The user-context callback in use. */
  readonly getUserContext: (() => unknown) | undefined;
}

/**
 * Records every call one client makes (the methods `AnosysOpenAILogger`
 * covers). Returns the same client, typed as it was.
 *
 * @example
 * ```js
 * import OpenAI from 'openai';
 * import { instrumentOpenAI } from 'anosys';
 *
 * const client = instrumentOpenAI(new OpenAI());
 * const stream = await client.chat.completions.create({ model: 'gpt-4o-mini', messages, stream: true });
 * for await (const chunk of stream) process.stdout.write(chunk.choices[0]?.delta?.content ?? '');
 * ```
 */
/**
 * An OpenTelemetry `SpanExporter` (for `@opentelemetry/sdk-trace-base`'s
 * span processors) that hands finished spans to the anosys engine: the
 * spans of any instrumentation, or your own, become records (a span with
 * `gen_ai.operation.name` an LLM-call record), through the same mapping as
 * the Rust and Python exporters. Exporting never fails the application.
 *
 * With `@opentelemetry/api` installed, context also goes both ways: a
 * record anosys makes inside an active OpenTelemetry span is its child, and
 * a span started inside an `anosysLogger` function is the function's.
 *
 * ```js
 * import { BasicTracerProvider, BatchSpanProcessor } from '@opentelemetry/sdk-trace-base';
 * import { AnosysSpanExporter } from 'anosys';
 * const provider = new BasicTracerProvider({ spanProcessors: [new BatchSpanProcessor(new AnosysSpanExporter())] });
 * ```
 */
export class AnosysSpanExporter {
  export(spans: ReadonlyArray<unknown>, resultCallback: (result: { code: number; error?: Error }) => void): void;
  forceFlush(): Promise<void>;
  shutdown(): Promise<void>;
}

export function instrumentOpenAI<T extends object>(client: T, options?: OpenAIInstrumentationOptions): T;

/** Undoes `instrumentOpenAI(client)`, and `AnosysOpenAILogger` for the classes `client` uses. */
export function uninstrumentOpenAI(client: object): void;

/** A function or method decorator that records each call. */
export interface AnosysDecorator {
  <F extends (...args: any[]) => any>(fn: F): F;
  <F extends (...args: any[]) => any>(fn: F, context: ClassMethodDecoratorContext): F;
  (target: object, key: string | symbol, descriptor: PropertyDescriptor): PropertyDescriptor;
}

/**
 * Records each call of a function: inputs, output, caller, duration, and a
 * thrown error (name, message, stack), which is re-thrown unchanged. A sync
 * function stays sync; an async one is recorded when its promise settles
 * and its caller gets that same promise. `this` is preserved. OpenAI calls
 * and logged functions called inside become children of the call.
 *
 * @example
 * ```js
 * import { anosysLogger } from 'anosys';
 *
 * const charge = anosysLogger('billing')(async function charge(orderId, cents) {
 *   return { orderId, cents, status: 'paid' };
 * });
 * await charge('o-1', 1200);
 * ```
 */
export function anosysLogger(source?: string): AnosysDecorator;
export function anosysLogger<F extends (...args: any[]) => any>(fn: F): F;

/**
 * Logs arbitrary data as one record; each top-level key is its own AnoSys
 * column. Returns whether the pipeline accepted it.
 *
 * @example
 * ```js
 * anosysRawLogger({ event: 'user_action', action: 'button_click', user_id: '12345' });
 * ```
 */
export function anosysRawLogger(data: unknown): boolean;

/** Settings of `setupAPI`. */
export interface SetupOptions {
  /** The AnoSys log URL (wins over ANOSYS_API_KEY). */
  path?: string;
  /** The first dynamic column per type: `{ string: 100, number: 3, bool: 1 }`. */
  startingIndices?: { string?: number; number?: number; bool?: number };
}

/**
 * Where records go and the first dynamic column per type. Throws a
 * `TypeError` or `Error` naming the bad setting.
 *
 * @example
 * ```js
 * setupAPI({ path: 'https://api.anosys.ai/log', startingIndices: { string: 100, number: 3, bool: 1 } });
 * ```
 */
export function setupAPI(options?: SetupOptions): void;
/** The seed SDK's name for `setupAPI`. */
export const setupApi: typeof setupAPI;
/** The seed SDK's name for `setupAPI`. */
export const setupDecorator: typeof setupAPI;

/**
 * Delivers everything captured so far (without blocking the event loop).
 * The process also delivers by itself before it exits.
 *
 * @example
 * ```js
 * const report = await flush({ timeoutMs: 5000 });
 * console.log(report.delivered, report.pending);
 * ```
 */
export function flush(options?: { timeoutMs?: number }): Promise<FlushReport>;

/** The pipeline's counters. */
export function counters(): Counters;
/** A record as `setBeforeSend` callbacks see it (the engine's JSON shape). */
export interface CapturedRecord {
  kind: 'llm_call' | 'function_call' | 'raw' | 'span';
  name: string;
  trace_id: string;
  span_id: string;
  input?: unknown;
  output?: unknown;
  attributes: Record<string, unknown>;
  [field: string]: unknown;
}
/**
 * Has `callback` see every record before it is queued: return the record
 * (changed or not) or `true` to keep it; `null`, `undefined` or `false` to
 * drop it (counted as `filtered`). `null` removes the callback.
 *
 * @example
 * setBeforeSend((record) => (record.name === 'health' ? null : record));
 */
export function setBeforeSend(
  callback: ((record: CapturedRecord) => CapturedRecord | boolean | null | undefined) | null,
): void;

/** Shuts the pipeline down, delivering what it holds (blocking up to `timeoutMs`). */
export function shutdown(options?: { timeoutMs?: number }): FlushReport;

/** This package's version. */
export const VERSION: string;
