/**
 * Numbers are stored exactly or refused: a JSON number whose text is not the
 * text JavaScript writes back for it (12345678901234567890, 1.50, 1e2) would
 * be stored changed, so it is refused with the text shown (docs/security.md).
 */

/** JSON.parse with the source-text context of the reviver (Node ≥ 21), not yet in TypeScript's lib. */
const json = JSON as unknown as {
  parse(text: string, reviver: (key: string, value: unknown, context: { source?: string }) => unknown): unknown;
};

/** Longest number text shown in a refusal. */
const SHOWN = 40;

/**
 * Why `text` (JSON) holds a number that would not be stored as written, or
 * undefined when every number round-trips (also when `text` is not JSON: the
 * parse error is reported elsewhere).
 */
export function inexactNumber(text: string): string | undefined {
  if (!/[0-9]/.test(text)) return undefined;
  let found: string | undefined;
  try {
    json.parse(text, (_key, value, context) => {
      if (found === undefined && typeof value === 'number' && context.source !== undefined) {
        const written = JSON.stringify(value);
        if (written !== context.source) {
          const shown = context.source.length > SHOWN ? `${context.source.slice(0, SHOWN)}…` : context.source;
          found =
            `the number ${shown} would be stored as ${written.length > SHOWN ? `${written.slice(0, SHOWN)}…` : written}; ` +
            'send it as a string to keep it exact';
        }
      }
      return value;
    });
  } catch {
    return undefined;
  }
  return found;
}
