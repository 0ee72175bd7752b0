/**
 * E-mail addresses as the registration UI accepts them: Django 3.2's
 * EmailValidator (django/core/validators.py) and forms.EmailField, which the
 * UI's form uses (docs/api.md). Written out here because no JavaScript
 * library checks what Django checks: its dot-atom or quoted local part, a
 * domain of DNS labels, `localhost`, an IPv4 or IPv6 literal in brackets, and
 * an internationalised domain tried again as IDNA (Python's `idna` codec,
 * IDNA 2003). test/ui-forms.test.ts checks it against Django itself.
 */
import { isIPv4, isIPv6 } from 'node:net';
import punycode from 'punycode/punycode.js';

/** EmailValidator's limit (RFC 3696), in characters (code points, as Python counts). */
export const EMAIL_MAX_LENGTH = 320;

// Python's re.IGNORECASE lets [A-Z] and [a-z] match four non-ASCII letters too: İ ı ſ K.
const FOLDED = '\u0130\u0131\u017F\u212A';
const LETTERS = `A-Za-z${FOLDED}`;
const ATOM = `[-!#$%&'*+/=?^_\`{}|~0-9${LETTERS}]+`;
const USER = new RegExp(
  `^(?:${ATOM}(?:\\.${ATOM})*|"(?:[\\x01-\\x08\\x0B\\x0C\\x0E-\\x1F!#-\\[\\]-\\x7F${FOLDED}]|\\\\[\\x01-\\x09\\x0B\\x0C\\x0E-\\x7F${FOLDED}])*")$`,
);
const LABEL = `[0-9${LETTERS}](?:[-0-9${LETTERS}]{0,61}[0-9${LETTERS}])?`;
const DOMAIN = new RegExp(`^(?:${LABEL}\\.)+[-0-9${LETTERS}]{2,63}(?<!-)$`);
// [A-f] spans A-Z [ \ ] ^ _ ` a-f; with IGNORECASE every letter.
const LITERAL = new RegExp(`^\\[([-0-9:.\\[\\\\\\]^_\`${LETTERS}]+)\\]$`);
const DOMAIN_ALLOWLIST = ['localhost'];

/** True when Django's EmailValidator accepts `value`. */
export function isDjangoEmail(value: string): boolean {
  if (value === '' || !value.includes('@') || [...value].length > EMAIL_MAX_LENGTH) return false;
  const at = value.lastIndexOf('@');
  const user = value.slice(0, at);
  const domain = value.slice(at + 1);
  if (!USER.test(user)) return false;
  if (DOMAIN_ALLOWLIST.includes(domain) || validDomainPart(domain)) return true;
  const ascii = idnaToAscii(domain);
  return ascii !== undefined && validDomainPart(ascii);
}

function validDomainPart(domain: string): boolean {
  if (DOMAIN.test(domain)) return true;
  const literal = LITERAL.exec(domain);
  if (!literal) return false;
  const address = literal[1]!;
  // validate_ipv46_address: ipaddress.IPv4Address (no leading zeros) or IPv6Address.
  return isIPv4(address) || (isIPv6(address) && !address.includes('%'));
}

// Python's idna codec splits on these four dots.
const DOTS = /[.\u3002\uFF0E\uFF61]/;
// Nameprep's table B.1: mapped to nothing.
// eslint-disable-next-line no-misleading-character-class -- code points listed one by one, never combined
const MAPPED_OUT = /[\u00AD\u034F\u1806\u180B-\u180D\u200B-\u200D\u2060\uFE00-\uFE0F\uFEFF]/g;
// Nameprep's prohibited tables (RFC 3454 C.1.2-C.9) as a label can still hold them after mapping; not the
// unassigned code points of table A.1, which Python's codec does not check.
const PROHIBITED =
  /[\u0080-\u00A0\u1680\u2000-\u200F\u2028-\u202F\u205F-\u2063\u206A-\u206F\u3000\u06DD\u070F\u180E\uFEFF\uFFF9-\uFFFF\uE000-\uF8FF\uFDD0-\uFDEF\u2FF0-\u2FFB\p{Cs}\u{1D173}-\u{1D17A}\u{E0001}\u{E0020}-\u{E007F}\u{F0000}-\u{10FFFF}]/u;

/**
 * The domain as Python's `domain.encode('idna')` writes it (IDNA 2003 ToASCII
 * per label: ASCII labels as they are; others nameprep-mapped and
 * punycode-encoded), or undefined where it raises. Nameprep is approximated
 * (its mapping and the prohibited characters, without its bidi rule), so a
 * few domains Python refuses pass here; none it accepts is refused.
 */
export function idnaToAscii(domain: string): string | undefined {
  const labels = domain.split(DOTS);
  const out: string[] = [];
  for (const [i, label] of labels.entries()) {
    // A trailing dot is kept; any other empty label raises.
    if (label === '' && i === labels.length - 1 && i > 0) {
      out.push('');
      continue;
    }
    const ascii = labelToAscii(label);
    if (ascii === undefined || ascii.length < 1 || ascii.length > 63) return undefined;
    out.push(ascii);
  }
  return out.join('.');
}

function labelToAscii(label: string): string | undefined {
  // eslint-disable-next-line no-control-regex -- ASCII is every code point up to 0x7F
  const isAscii = (s: string): boolean => /^[\x00-\x7F]*$/.test(s);
  if (isAscii(label)) return label;
  const mapped = label.replace(MAPPED_OUT, '').replace(/ß/g, 'ss').replace(/ς/g, 'σ').toLowerCase().normalize('NFKC');
  if (PROHIBITED.test(mapped)) return undefined;
  if (isAscii(mapped)) return mapped;
  if (mapped.toLowerCase().startsWith('xn--')) return undefined;
  return `xn--${punycode.encode(mapped)}`;
}
