// Compiled by tests/types.test.mjs (tsc --noEmit, strict): the declarations
// in index.d.ts describe the package as an application uses it.
import { BasicTracerProvider, SimpleSpanProcessor } from '@opentelemetry/sdk-trace-base';
import OpenAI from 'openai';
import {
  AnosysOpenAILogger,
  AnosysSpanExporter,
  anosysLogger,
  anosysRawLogger,
  counters,
  flush,
  instrumentOpenAI,
  setupAPI,
  type FlushReport,
} from 'anosys';

const logger = new AnosysOpenAILogger({ getUserContext: () => ({ user_id: 'u-42' }) });
const found: boolean = logger.instrumented;

const client: OpenAI = instrumentOpenAI(new OpenAI({ apiKey: 'sk-x' }));

const add = anosysLogger('math')((a: number, b: number) => a + b);
const sum: number = add(1, 2);

const fetchUser = anosysLogger('users')(async (id: string) => ({ id }));
const user: Promise<{ id: string }> = fetchUser('u-1');

class Service {
  @anosysLogger('svc')
  compute(x: number): number {
    return x * 2;
  }
}

const accepted: boolean = anosysRawLogger({ event: 'x' });
setupAPI({ path: 'https://example.invalid/log', startingIndices: { string: 100, number: 3, bool: 1 } });

async function main(): Promise<void> {
  const report: FlushReport = await flush({ timeoutMs: 100 });
  const delivered: number = report.delivered;
  const dropped: number = counters().dropped;
  const reply = await client.chat.completions.create({ model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'Hi' }] });
  const text: string | null = reply.choices[0].message.content;
  void [found, sum, user, accepted, delivered, dropped, text, new Service().compute(1)];
}
void main;

// The exporter fits the OpenTelemetry SDK's span processors.
const provider = new BasicTracerProvider({ spanProcessors: [new SimpleSpanProcessor(new AnosysSpanExporter())] });
void provider.forceFlush();
