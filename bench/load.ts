/**
 * HTTP load with autocannon: `connections` clients posting the same valid,
 * signed form to /form/ for a fixed time.
 */
import autocannon from 'autocannon';
import { jsonBody, sign } from '../harness/http.ts';
import { validForm } from '../harness/forms.ts';
import { BENCH_SECRET } from './context.ts';

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
const HEADERS = { 'content-type': 'application/json', 'x-signature': sign(PATH, BODY, BENCH_SECRET) };

export async function load(base: string, connections: number, durationS: number): Promise<LoadResult> {
  const result = await autocannon({
    url: base + PATH,
    method: 'POST',
    headers: HEADERS,
    body: BODY,
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
