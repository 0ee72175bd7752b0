/**
 * The one way a variable is read from the environment, and the one rule by
 * which a value is shown in an error (`ConfigError` applies it): both the
 * settings of config.ts and the OTEL_* variables of tracing-config.ts go
 * through here.
 */

export type Env = Readonly<Record<string, string | undefined>>;

/** A variable as read: the name used (the first of `names` that is set; empty counts as unset) and its trimmed text. */
export interface ReadVariable {
  used: string;
  value: string | undefined;
}

/** Reads the first of `names` that is set to something other than blanks. */
export function readVariable(env: Env, names: readonly string[]): ReadVariable {
  for (const name of names) {
    const value = env[name]?.trim();
    if (value !== undefined && value !== '') return { used: name, value };
  }
  return { used: names[0]!, value: undefined };
}

/** Variables whose whole value is a secret: never shown, not even in part. */
export const SECRET_VARIABLES: ReadonlySet<string> = new Set([
  'UI_SECRET',
  'UI_SECRET_NEXT',
  'SENTRY_DSN',
  'OTEL_EXPORTER_OTLP_HEADERS',
  'OTEL_EXPORTER_OTLP_TRACES_HEADERS',
  'AWS_SECRET_ACCESS_KEY',
]);

/** Query parameters whose value is a credential (libpq's `password`, `sslpassword`, tokens, keys). */
const SECRET_PARAMETER = /pass|secret|token|key|auth|sig|credential/i;

/**
 * How a value may be shown in an error message: `***` for a secret variable;
 * for anything else, the text with what could be a credential hidden — the
 * password of a URL's user information (everything between the first `:` and
 * the last `@` of the authority, so `user:hun@ter2@host` and `:hunter2@host`
 * are both caught) and the values of credential-like query parameters. A
 * value that names a URL scheme but has no `scheme://` shape is hidden whole.
 */
export function redactValue(variable: string, value: string): string {
  if (value === '') return value;
  if (SECRET_VARIABLES.has(variable)) return '***';
  const scheme = /^([A-Za-z][A-Za-z0-9+.-]*):\/\//.exec(value);
  if (!scheme) return /^[A-Za-z][A-Za-z0-9+.-]*:|@/.test(value) ? '***' : value;
  const rest = value.slice(scheme[0].length);
  const authorityEnd = rest.search(/[/?#]/);
  const authority = authorityEnd === -1 ? rest : rest.slice(0, authorityEnd);
  const tail = authorityEnd === -1 ? '' : rest.slice(authorityEnd);
  const at = authority.lastIndexOf('@');
  let shownAuthority = authority;
  if (at !== -1) {
    const userinfo = authority.slice(0, at);
    const colon = userinfo.indexOf(':');
    shownAuthority = `${colon === -1 ? userinfo : `${userinfo.slice(0, colon)}:***`}@${authority.slice(at + 1)}`;
  }
  const shownTail = tail.replace(/([?&;])([^=&;#]*)=([^&;#]*)/g, (whole, sep: string, name: string) =>
    SECRET_PARAMETER.test(decodeURIComponentSafe(name)) ? `${sep}${name}=***` : whole,
  );
  return `${scheme[0]}${shownAuthority}${shownTail}`;
}

function decodeURIComponentSafe(text: string): string {
  try {
    return decodeURIComponent(text);
  } catch {
    return text;
  }
}
