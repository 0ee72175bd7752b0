import { expect } from 'chai';
import { LIMITS, validateForm, type FieldError } from '../../services/common/form-schema.ts';
import { decodeFormMessage, encodeFormMessage, parseData } from '../../services/common/message.ts';
import { REQUIRED_FIELDS, validForm } from '../../harness/forms.ts';
import { contentId } from '../../services/common/submission-id.ts';

function errorsOf(input: unknown): FieldError[] {
  const result = validateForm(input);
  if (result.ok) throw new Error(`expected a refusal, got ${JSON.stringify(result.value)}`);
  return result.errors;
}

function fieldsOf(input: unknown): string[] {
  return errorsOf(input).map((e) => e.field);
}

function accepts(input: unknown): Record<string, unknown> {
  const result = validateForm(input);
  if (!result.ok) throw new Error(`expected acceptance, got ${JSON.stringify(result.errors)}`);
  return result.value;
}

function without(key: string): Record<string, unknown> {
  const form = validForm();
  delete form[key];
  return form;
}

describe('form schema', () => {
  it('accepts a complete form and returns the same values', () => {
    expect(accepts(validForm())).to.deep.equal(validForm());
  });

  for (const field of ['company_name', 'contact_name', 'website']) {
    describe(field, () => {
      it('is required', () => {
        expect(errorsOf(without(field))).to.deep.equal([{ field, message: `${field} is required` }]);
      });
      it('takes 255 characters and refuses 256', () => {
        accepts(validForm({ [field]: 'x'.repeat(255) }));
        expect(errorsOf(validForm({ [field]: 'x'.repeat(256) }))).to.deep.equal([
          { field, message: `${field} must be at most 255 characters` },
        ]);
      });
      it('must be a string (numbers, booleans, null, lists, objects refused)', () => {
        for (const value of [42, true, null, ['a'], { a: 'b' }]) {
          expect(errorsOf(validForm({ [field]: value })), JSON.stringify(value)).to.deep.equal([
            { field, message: `${field} must be a string` },
          ]);
        }
      });
    });
  }

  describe('email_address1 and email_address2', () => {
    it('are required', () => {
      expect(fieldsOf(without('email_address1'))).to.include('email_address1');
      expect(fieldsOf(without('email_address2'))).to.deep.equal(['email_address2']);
    });
    it('must be e-mail addresses', () => {
      expect(
        errorsOf(validForm({ email_address1: 'not-an-address', email_address2: 'not-an-address' })),
      ).to.deep.include({
        field: 'email_address1',
        message: 'email_address1 must be an e-mail address',
      });
      expect(fieldsOf(validForm({ email_address2: 'ada@' }))).to.include('email_address2');
    });
    it('take 255 characters and refuse 256', () => {
      const long = `${'a'.repeat(243)}@example.com`;
      expect(long).to.have.length(255);
      accepts(validForm({ email_address1: long, email_address2: long.toUpperCase() }));
      const tooLong = `a${long}`;
      expect(errorsOf(validForm({ email_address1: tooLong, email_address2: tooLong }))).to.deep.include({
        field: 'email_address1',
        message: 'email_address1 must be at most 255 characters',
      });
    });
    it('must be equal ignoring case', () => {
      accepts(validForm({ email_address1: 'Ada@Example.com', email_address2: 'aDA@example.COM' }));
      expect(errorsOf(validForm({ email_address2: 'bob@example.com' }))).to.deep.equal([
        { field: 'email_address2', message: 'email_address2 must equal email_address1 (ignoring case)' },
      ]);
    });
  });

  describe('phone_number', () => {
    it('is optional and may be empty', () => {
      expect(accepts(without('phone_number'))).not.to.have.property('phone_number');
      expect(accepts(validForm({ phone_number: '' }))).to.have.property('phone_number', '');
    });
    it('takes at most 255 characters', () => {
      accepts(validForm({ phone_number: '1'.repeat(255) }));
      expect(fieldsOf(validForm({ phone_number: '1'.repeat(256) }))).to.deep.equal(['phone_number']);
    });
    it('must be a string', () => {
      expect(errorsOf(validForm({ phone_number: 442079460000 }))).to.deep.equal([
        { field: 'phone_number', message: 'phone_number must be a string' },
      ]);
    });
  });

  describe('exporting', () => {
    it('takes "True", "False", true and false', () => {
      for (const value of ['True', 'False', true, false])
        expect(accepts(validForm({ exporting: value })).exporting).to.equal(value);
    });
    it('refuses other spellings and types', () => {
      for (const value of ['true', 'yes', 1, 0, null, ['True'], {}]) {
        expect(errorsOf(validForm({ exporting: value })), JSON.stringify(value)).to.deep.equal([
          { field: 'exporting', message: 'exporting must be "True", "False" or a boolean' },
        ]);
      }
    });
    it('is required', () => {
      expect(errorsOf(without('exporting'))).to.deep.equal([{ field: 'exporting', message: 'exporting is required' }]);
    });
  });

  describe('agree_terms', () => {
    it('must be true', () => {
      for (const value of [false, 'true', 'True', 1, null]) {
        expect(errorsOf(validForm({ agree_terms: value })), JSON.stringify(value)).to.deep.equal([
          { field: 'agree_terms', message: 'agree_terms must be true' },
        ]);
      }
    });
    it('is required', () => {
      expect(errorsOf(without('agree_terms'))).to.deep.equal([
        { field: 'agree_terms', message: 'agree_terms is required' },
      ]);
    });
  });

  describe('marketing_source', () => {
    it('is optional: a string or a list of strings', () => {
      expect(accepts(without('marketing_source'))).not.to.have.property('marketing_source');
      expect(accepts(validForm({ marketing_source: 'Print' })).marketing_source).to.equal('Print');
      expect(accepts(validForm({ marketing_source: ['Print', 'Radio'] })).marketing_source).to.deep.equal([
        'Print',
        'Radio',
      ]);
      expect(accepts(validForm({ marketing_source: [] })).marketing_source).to.deep.equal([]);
    });
    it('refuses numbers, non-string items, long items and long lists', () => {
      for (const value of [
        5,
        ['a', 5],
        ['x'.repeat(256)],
        'x'.repeat(256),
        Array(LIMITS.maxArrayItems + 1).fill('a'),
        { a: 'b' },
        [['nested']],
      ]) {
        expect(fieldsOf(validForm({ marketing_source: value })), JSON.stringify(value).slice(0, 40)).to.deep.equal([
          'marketing_source',
        ]);
      }
    });
  });

  describe('opt_in', () => {
    it('is an optional boolean', () => {
      expect(accepts(without('opt_in'))).not.to.have.property('opt_in');
      expect(accepts(validForm({ opt_in: true })).opt_in).to.equal(true);
      for (const value of ['true', 1, null]) {
        expect(errorsOf(validForm({ opt_in: value }))).to.deep.equal([
          { field: 'opt_in', message: 'opt_in must be a boolean' },
        ]);
      }
    });
  });

  describe('other fields', () => {
    it('are kept, nested ones included', () => {
      const extra = { marketing_source_other: 'a friend', answers: { q1: ['a', 1, null, true], q2: { deep: 'x' } } };
      expect(accepts(validForm(extra))).to.deep.include(extra);
    });
    it(`are capped at ${LIMITS.maxKeys} keys in all, nested ones included`, () => {
      const base = validForm();
      const room = LIMITS.maxKeys - Object.keys(base).length;
      const fits = Object.fromEntries(Array.from({ length: room }, (_, i) => [`k${i}`, i]));
      accepts({ ...base, ...fits });
      expect(errorsOf({ ...base, ...fits, one_more: 1 })[0]?.message).to.equal(
        `data has more than ${LIMITS.maxKeys} keys`,
      );
      const nested = { ...base, box: Object.fromEntries(Array.from({ length: room }, (_, i) => [`k${i}`, i])) };
      expect(errorsOf(nested)[0]?.message).to.equal(`data has more than ${LIMITS.maxKeys} keys`);
    });
    it(`are capped at ${LIMITS.maxExtraStringLength} characters per string`, () => {
      accepts(validForm({ note: 'x'.repeat(LIMITS.maxExtraStringLength) }));
      expect(errorsOf(validForm({ note: 'x'.repeat(LIMITS.maxExtraStringLength + 1) }))).to.deep.equal([
        { field: 'note', message: 'note must be at most 2000 characters' },
      ]);
    });
    it(`are capped at ${LIMITS.maxDepth} levels of nesting and ${LIMITS.maxArrayItems} items per list`, () => {
      // Three levels of objects or lists below the form; scalars at any of them.
      accepts(validForm({ a: { b: { c: { d: 'leaf' } } }, l: [[['x']]] }));
      expect(errorsOf(validForm({ a: { b: { c: { d: { e: 'leaf' } } } } }))).to.deep.equal([
        { field: 'a.b.c.d', message: 'a.b.c.d is nested deeper than 3 levels' },
      ]);
      expect(fieldsOf(validForm({ a: [[[[]]]] }))).to.deep.equal(['a.0.0.0']);
      accepts(validForm({ list: Array(LIMITS.maxArrayItems).fill(1) }));
      expect(fieldsOf(validForm({ list: Array(LIMITS.maxArrayItems + 1).fill(1) }))).to.deep.equal(['list']);
    });
    it('refuse keys longer than the key cap', () => {
      expect(errorsOf(validForm({ ['k'.repeat(LIMITS.maxKeyLength + 1)]: 1 }))[0]?.message).to.equal(
        `key longer than ${LIMITS.maxKeyLength} characters`,
      );
    });
  });

  describe('storability', () => {
    it('refuses NUL characters in named fields, other fields, nested values and keys', () => {
      expect(fieldsOf(validForm({ company_name: 'Acme\u0000' }))).to.deep.equal(['company_name']);
      expect(fieldsOf(validForm({ marketing_source: ['ok', 'b\u0000ad'] }))).to.deep.equal(['marketing_source']);
      expect(fieldsOf(validForm({ note: 'x\u0000' }))).to.deep.equal(['note']);
      expect(fieldsOf(validForm({ box: { inner: ['\u0000'] } }))).to.deep.equal(['box.inner.0']);
      expect(errorsOf(validForm({ 'k\u0000': 1 }))[0]?.message).to.equal(
        'key contains a NUL character or an unpaired surrogate',
      );
    });
    it('refuses unpaired surrogates and keeps paired ones', () => {
      expect(errorsOf(validForm({ contact_name: 'Ada \ud800' }))).to.deep.equal([
        { field: 'contact_name', message: 'contact_name contains a NUL character or an unpaired surrogate' },
      ]);
      expect(fieldsOf(validForm({ note: '\udc00x' }))).to.deep.equal(['note']);
      expect(fieldsOf(validForm({ '\ud83d': 1 }))).to.have.length(1);
      expect(accepts(validForm({ contact_name: 'Ada 😀' })).contact_name).to.equal('Ada 😀');
    });
  });

  describe('prototype pollution', () => {
    it('refuses __proto__, constructor and prototype keys at any depth', () => {
      const own = JSON.parse('{"__proto__": {"polluted": true}}') as Record<string, unknown>;
      expect(errorsOf({ ...validForm(), ...own })).to.deep.equal([
        { field: '__proto__', message: '__proto__ is a forbidden key' },
      ]);
      expect(fieldsOf(validForm({ box: JSON.parse('{"__proto__": {"polluted": true}}') }))).to.deep.equal([
        'box.__proto__',
      ]);
      expect(fieldsOf(validForm({ constructor: { prototype: { polluted: true } } }))).to.deep.equal(['constructor']);
      expect(fieldsOf(validForm({ box: { prototype: 1 } }))).to.deep.equal(['box.prototype']);
      expect(({} as Record<string, unknown>).polluted).to.equal(undefined);
    });
    it('builds the result fresh: a plain object, not the input, without its prototype', () => {
      const input = Object.assign(Object.create(null) as Record<string, unknown>, validForm({ box: { a: 1 } }));
      const value = accepts(input);
      expect(value).not.to.equal(input);
      expect(Object.getPrototypeOf(value)).to.equal(Object.prototype);
      expect(value.box).not.to.equal(input.box);
    });
    it('refuses objects that are not plain data', () => {
      expect(errorsOf(new Map())).to.deep.equal([{ field: '', message: 'data must be a JSON object' }]);
      expect(fieldsOf(validForm({ when: new Date(0) }))).to.deep.equal(['when']);
    });
  });

  describe('hostile shapes', () => {
    it('refuses values that are not JSON objects', () => {
      for (const value of [null, undefined, 'x', 1, [], [validForm()]]) {
        expect(errorsOf(value), JSON.stringify(value)).to.deep.equal([
          { field: '', message: 'data must be a JSON object' },
        ]);
      }
    });
    it('does not recurse into deeply nested values of named or other fields', () => {
      let deep: unknown = 'leaf';
      for (let i = 0; i < 50_000; i++) deep = i % 2 ? [deep] : { a: deep };
      for (const field of [
        'company_name',
        'email_address1',
        'exporting',
        'agree_terms',
        'marketing_source',
        'opt_in',
        'phone_number',
        'other',
      ]) {
        expect(fieldsOf(validForm({ [field]: deep })), field).to.have.length(1);
      }
    });
    it('does not echo the offending value in messages', () => {
      const errors = errorsOf(validForm({ company_name: { secret: 'do-not-echo' }, agree_terms: 'do-not-echo' }));
      expect(JSON.stringify(errors)).not.to.include('do-not-echo');
    });
    it(`names every failing field, at most ${LIMITS.maxErrors} of them`, () => {
      const errors = errorsOf({
        company_name: 1,
        email_address1: 'x',
        email_address2: 'y',
        exporting: 'maybe',
        agree_terms: false,
        opt_in: 'no',
      });
      expect(errors.map((e) => e.field)).to.have.members([...REQUIRED_FIELDS, 'opt_in']);
      const many = Object.fromEntries(Array.from({ length: 60 }, (_, i) => [`k${i}`, '\u0000']));
      expect(errorsOf(many)).to.have.length(LIMITS.maxErrors);
    });
  });

  describe('parseData and decodeFormMessage', () => {
    it('take data as an object or a string holding one', () => {
      expect(parseData({ a: 1 })).to.deep.equal({ ok: true, value: { a: 1 } });
      expect(parseData('{"a":1}')).to.deep.equal({ ok: true, value: { a: 1 } });
      expect(parseData(undefined)).to.deep.equal({ ok: false, code: 'data_missing', reason: 'data is missing' });
      expect(parseData('{"a":')).to.deep.equal({
        ok: false,
        code: 'data_not_json',
        reason: 'data is a string that is not JSON',
      });
    });
    it('round-trip a message with its request id, and refuse broken ones with a reason code', () => {
      const body = encodeFormMessage({
        data: accepts(validForm()) as never,
        received_at: new Date(0).toISOString(),
        request_id: 'r1',
      });
      // Not the replaced service's format (data is an object), yet no id: it gets its content's id.
      expect(decodeFormMessage(body)).to.deep.equal({
        ok: true,
        data: validForm(),
        requestId: 'r1',
        submissionId: contentId(validForm() as never),
      });
      expect(decodeFormMessage(JSON.stringify({ data: JSON.stringify(validForm()) }))).to.deep.equal({
        ok: true,
        data: validForm(),
        requestId: undefined,
        submissionId: undefined,
      });
      const id = '0f8fad5b-d9cb-469f-a165-70867728950e';
      const withId = encodeFormMessage({
        data: accepts(validForm()) as never,
        received_at: new Date(0).toISOString(),
        request_id: 'r5',
        submission_id: id,
      });
      expect(decodeFormMessage(withId)).to.deep.equal({
        ok: true,
        data: validForm(),
        requestId: 'r5',
        submissionId: id,
      });
      expect(
        decodeFormMessage(JSON.stringify({ data: validForm(), request_id: 'r6', submission_id: 'ABC' })),
      ).to.deep.equal({
        ok: false,
        code: 'submission_id_invalid',
        reason: 'submission_id is not a lowercase UUID',
        requestId: 'r6',
      });
      expect(
        decodeFormMessage(JSON.stringify({ data: validForm(), request_id: 'not a usable id; spaces' })).requestId,
      ).to.equal(undefined);
      expect(decodeFormMessage(undefined)).to.deep.equal({
        ok: false,
        code: 'empty_body',
        reason: 'empty body',
        requestId: undefined,
      });
      expect(decodeFormMessage('nope')).to.deep.equal({
        ok: false,
        code: 'not_json',
        reason: 'body is not JSON',
        requestId: undefined,
      });
      expect(decodeFormMessage('[1]')).to.deep.equal({
        ok: false,
        code: 'not_object',
        reason: 'body is not a JSON object',
        requestId: undefined,
      });
      expect(decodeFormMessage(JSON.stringify({ request_id: 'r2' }))).to.deep.equal({
        ok: false,
        code: 'data_missing',
        reason: 'data is missing',
        requestId: 'r2',
      });
      expect(decodeFormMessage(JSON.stringify({ data: '{', request_id: 'r3' }))).to.deep.equal({
        ok: false,
        code: 'data_not_json',
        reason: 'data is a string that is not JSON',
        requestId: 'r3',
      });
      const invalid = decodeFormMessage(JSON.stringify({ data: validForm({ agree_terms: false }), request_id: 'r4' }));
      expect(invalid).to.deep.equal({
        ok: false,
        code: 'validation',
        reason: 'data failed validation: agree_terms must be true',
        requestId: 'r4',
      });
    });
  });
});
