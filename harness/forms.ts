/** What the tests, the benchmark and the chaos run post: a valid form, signed with a known secret. */

/** The UI secret the harness's services are started with (32 characters or more, as the web requires). */
export const TEST_SECRET = 'test-ui-secret-of-at-least-32-characters';

/** A valid registration form; `overrides` replace or add fields. */
export function validForm(overrides: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    company_name: 'Acme Exports Ltd',
    contact_name: 'Ada Lovelace',
    email_address1: 'ada@example.com',
    email_address2: 'ADA@example.com',
    website: 'https://acme.example.com',
    phone_number: '+44 20 7946 0000',
    exporting: 'True',
    agree_terms: true,
    marketing_source: 'Social media',
    opt_in: false,
    ...overrides,
  };
}

/**
 * A queue message body in the web's envelope around `data`, taken as given (tests also queue data the
 * web would refuse), with `requestId` as its request id and no submission id (as a v1 web queues it).
 */
export function queueBody(data: unknown, requestId: string): string {
  return JSON.stringify({ data, received_at: new Date().toISOString(), request_id: requestId });
}

/** The fields a registration form cannot do without. */
export const REQUIRED_FIELDS = [
  'company_name',
  'contact_name',
  'email_address1',
  'email_address2',
  'website',
  'exporting',
  'agree_terms',
] as const;

/** validForm's other fields, which a form may leave out. */
export const OPTIONAL_FIELDS: readonly string[] = Object.keys(validForm()).filter(
  (key) => !(REQUIRED_FIELDS as readonly string[]).includes(key),
);
