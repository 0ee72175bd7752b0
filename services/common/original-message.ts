/**
 * Messages of the replaced service v1.0.4, read from its live queue during the
 * cut-over (docs/cut-over.md). Its web queues `{"data": "<the posted data as
 * a JSON string>"}` after checking only that `data` is JSON; its worker stores
 * any JSON object whose `data` is not null, as the whole body, and sends
 * anything else back to the same queue (for ever). The new worker stores what
 * the original's worker would have stored, so that no form its web answered
 * 202 is lost, and sends the rest to the real invalid queue.
 */
import { decodeFormMessage, type DecodeResult } from './message.ts';
import { storable, type JsonValue } from './form-schema.ts';

/** A body stored as the original's worker stores it (the whole body), because its form does not pass our schema. */
export interface VerbatimBody {
  ok: true;
  verbatim: true;
  data: { [key: string]: JsonValue };
  requestId: undefined;
  submissionId: undefined;
}

export type OriginalDecodeResult = DecodeResult | VerbatimBody;

/**
 * Decodes a body from the original's live queue: a valid form as any message
 * (the form is stored as new rows are); else, if the original's worker would
 * have stored it, the whole body; else why not (it goes to the invalid queue).
 */
export function decodeOriginalMessage(body: string | undefined): OriginalDecodeResult {
  const decoded = decodeFormMessage(body);
  if (decoded.ok || (decoded.code !== 'validation' && decoded.code !== 'data_not_json')) return decoded;
  const parsed = JSON.parse(body!) as { [key: string]: JsonValue };
  // form/queue.py: is_valid_form_data is `json.loads(body).get('data') is not None`.
  if (parsed.data === null || !storableJson(parsed)) return decoded;
  return { ok: true, verbatim: true, data: parsed, requestId: undefined, submissionId: undefined };
}

/** No string or key PostgreSQL's jsonb refuses (NUL, unpaired surrogates); iterative, as bodies may nest deeply. */
function storableJson(root: JsonValue): boolean {
  const stack: JsonValue[] = [root];
  while (stack.length > 0) {
    const value = stack.pop()!;
    if (typeof value === 'string') {
      if (!storable(value)) return false;
    } else if (Array.isArray(value)) for (const item of value) stack.push(item);
    else if (value !== null && typeof value === 'object') {
      for (const [key, child] of Object.entries(value)) {
        if (!storable(key)) return false;
        stack.push(child);
      }
    }
  }
  return true;
}
