/**
 * HTTP load with autocannon: `connections` clients posting a valid, signed
 * form to /form/ for a fixed time: the same one each time, or with `distinct`
 * a new one per request (what end to end needs: repeats of one signed request
 * are one submission, stored once).
 */
import autocannon from 'autocannon';
import { jsonBody, sign } from '../harness/http.ts';
import { validForm } from '../harness/forms.ts';
import { TEST_SECRET } from '../harness/forms.ts';

export interface LoadResult {
  /** Accepted forms (2xx). */
  accepted: number;
  /** Other answers and connection errors. */
  failed: number;
  durationS: number;
  requestsPerSecond: number;
  p50Ms: number;
  p99Ms: number;
}

const PATH = '/form/';
const BODY = jsonBody(validForm());
const HEADERS = { 'content-type': 'application/json', 'x-signature': sign(PATH, BODY, TEST_SECRET) };

/** The n-th distinct form as a signed request. */
function distinctRequest(request: autocannon.Request, n: number): autocannon.Request {
  const body = jsonBody(validForm({ contact_name: `Bench ${n}` }));
  return { ...request, body, headers: { ...HEADERS, 'x-signature': sign(PATH, body, TEST_SECRET) } };
}

export async function load(
  base: string,
  connections: number,
  durationS: number,
  distinct = false,
): Promise<LoadResult> {
  let n = 0;
  const result = await autocannon({
    url: base + PATH,
    method: 'POST',
    headers: HEADERS,
    body: BODY,
    ...(distinct
      ? { requests: [{ setupRequest: (request: autocannon.Request) => distinctRequest(request, n++) }] }
      : {}),
    connections,
    duration: durationS,
    timeout: 30,
  });
  const accepted = result['2xx'];
  return {
    accepted,
    failed: result.non2xx + result.errors,
    durationS: result.duration,
    requestsPerSecond: accepted / result.duration,
    p50Ms: result.latency.p50,
    p99Ms: result.latency.p99,
  };
}
