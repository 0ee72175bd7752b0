/**
 * The process span of each form in a batch: a CONSUMER span whose parent is
 * the form's creation context (the web's PRODUCER span, carried in the
 * message attributes), so one trace runs from the UI's request to the stored
 * row; it also links that context, as the messaging conventions ask of
 * batches. A message without trace attributes gets a span under the batch's.
 */
import type { InvalidReason } from '../common/message.ts';
import { ATTR, AWS_SQS, FORM_ATTR, type TraceSpan, type Tracing } from '../common/tracing.ts';
import type { Received } from './queue.ts';

/** What became of a form, as the `form_data.outcome` attribute. */
export type Outcome = 'stored' | 'duplicate' | 'invalid' | 'retried';

export class FormSpans {
  private readonly spans = new Map<string, TraceSpan>();

  constructor(tracing: Tracing, queue: string, messages: readonly Received[]) {
    if (!tracing.enabled) return;
    for (const m of messages) {
      const created = m.trace.traceparent !== undefined;
      this.spans.set(
        m.messageId,
        tracing.start(`process ${queue}`, {
          kind: 'consumer',
          ...(created ? { parent: m.trace, links: [m.trace] } : {}),
          attributes: {
            [ATTR.messagingSystem]: AWS_SQS,
            [ATTR.messagingOperationType]: 'process',
            [ATTR.messagingOperationName]: 'process',
            [ATTR.messagingDestination]: queue,
            [ATTR.messagingMessageId]: m.messageId,
            [FORM_ATTR.receiveCount]: m.receiveCount,
          },
        }),
      );
    }
  }

  /** Records a form's outcome; `requestId` and `reason` (a bounded code) when known. */
  outcome(messageId: string, outcome: Outcome, requestId?: string, reason?: InvalidReason): void {
    this.spans.get(messageId)?.setAttributes({
      [FORM_ATTR.outcome]: outcome,
      [FORM_ATTR.requestId]: requestId,
      [FORM_ATTR.invalidReason]: reason,
    });
  }

  /** `trace_id` and `span_id` of a form's span, for its log line. */
  fields(messageId: string): Record<string, string> {
    return this.spans.get(messageId)?.logFields() ?? {};
  }

  /** Ends every span. */
  end(): void {
    for (const span of this.spans.values()) span.end();
    this.spans.clear();
  }
}
