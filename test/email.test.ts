/**
 * services/common/email.ts against answers of Django 3.2's validate_email (run
 * once with Django from PyPI; test/ui-forms.test.ts compares with Django live).
 */
import { expect } from 'chai';
import { idnaToAscii, isDjangoEmail } from '../services/common/email.ts';

/** [address, what Django 3.2.25 answered]. */
const DJANGO: readonly [string, boolean][] = [
  ['user@exämple.com', true],
  ['user@[127.0.0.1]', true],
  ['user@[IPv6:::1]', false],
  ['user@[::1]', true],
  ['a@localhost', true],
  ['"a b"@x.com', false],
  ['"a\\"b"@x.com', true],
  ['\u017F@example.com', true],
  ['\u212A@example.com', true],
  ['a@b', false],
  ['a@b.c', false],
  ['a@[01.2.3.4]', false],
  ['a..b@x.com', false],
  ['user@example.com.', false],
  ['x@ex\u200Dample.com', true],
  ['x@\u0301abc.com', true],
  ['x@мойдомен.рф', true],
  ['x@例え.テスト', true],
  ['a@-x.com', false],
  ['a@x-.com', false],
  ['a@x.c-', false],
  [`a@${'x'.repeat(63)}.com`, true],
  [`a@${'x'.repeat(64)}.com`, false],
  ['user@EXAMPLE.COM', true],
  ['a@[1.2.3.4.5]', false],
  ['a@xn--.com', false],
  ['user@مثال.إختبار', true],
  ['a@1.2.3.4', false],
  ['a@\u212Aelvin.com', true],
  ['a@x.\u0131o', true],
];

describe("e-mail addresses as Django's EmailValidator takes them (services/common/email.ts)", () => {
  for (const [address, django] of DJANGO) {
    it(`${JSON.stringify(address)}: ${django ? 'accepted' : 'refused'}`, () => {
      expect(isDjangoEmail(address)).to.equal(django);
    });
  }

  it("writes IDN labels as Python's idna codec does (ASCII labels as they are, the four dots split)", () => {
    expect(idnaToAscii('exämple.com')).to.equal('xn--exmple-cua.com');
    expect(idnaToAscii('Bücher\u3002EXAMPLE')).to.equal('xn--bcher-kva.EXAMPLE');
    expect(idnaToAscii('a..b')).to.equal(undefined);
  });
});
