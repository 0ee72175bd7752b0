/**
 * PromQL as the chart's alerts and dashboard write it: parsed with the
 * Prometheus UI's own grammar (@prometheus-io/lezer-promql), reduced to what
 * the tests check (syntax errors, the vector selectors and their matchers).
 */
import { parser } from '@prometheus-io/lezer-promql';

type SyntaxNode = ReturnType<typeof parser.parse>['topNode'];

export interface Matcher {
  label: string;
  /** =, !=, =~ or !~ */
  op: string;
  value: string;
}

export interface Selector {
  /** Metric names the selector can match: its name, or the literal alternatives of a __name__ matcher. */
  names: string[];
  matchers: Matcher[];
  text: string;
}

export interface ParsedPromQL {
  /** One entry per error node: its position and the text around it. */
  errors: string[];
  selectors: Selector[];
}

function stringValue(literal: string): string {
  if (literal.startsWith('`')) return literal.slice(1, -1);
  if (literal.startsWith("'"))
    return JSON.parse(`"${literal.slice(1, -1).replace(/\\'/g, "'").replace(/"/g, '\\"')}"`) as string;
  return JSON.parse(literal) as string;
}

function matcherOf(node: SyntaxNode, text: (n: SyntaxNode) => string): Matcher | undefined {
  const name = node.getChild('LabelName') ?? node.getChild('QuotedLabelName');
  const op = node.getChild('MatchOp');
  const value = node.getChild('StringLiteral');
  if (!name || !op || !value) return undefined;
  const label = name.name === 'QuotedLabelName' ? stringValue(text(name)) : text(name);
  return { label, op: text(op), value: stringValue(text(value)) };
}

function namesOf(metric: string | undefined, matchers: readonly Matcher[]): string[] {
  if (metric) return [metric];
  const byName = matchers.find((m) => m.label === '__name__');
  if (!byName) return [];
  if (byName.op === '=') return [byName.value];
  if (byName.op === '=~' && /^[A-Za-z_:][A-Za-z0-9_:]*(\|[A-Za-z_:][A-Za-z0-9_:]*)*$/.test(byName.value))
    return byName.value.split('|');
  return [];
}

/** Parses `expr`; never throws (syntax errors are returned). */
export function parsePromQL(expr: string): ParsedPromQL {
  const tree = parser.parse(expr);
  const text = (n: SyntaxNode): string => expr.slice(n.from, n.to);
  const errors: string[] = [];
  const selectors: Selector[] = [];
  tree.iterate({
    enter: (ref) => {
      if (ref.type.isError) {
        errors.push(
          `at ${ref.from}: …${expr.slice(Math.max(0, ref.from - 20), ref.from)}⟨here⟩${expr.slice(ref.from, ref.from + 20)}…`,
        );
        return;
      }
      if (ref.name !== 'VectorSelector') return;
      const node = ref.node;
      const metric = node.getChild('Identifier');
      const matchers: Matcher[] = [];
      const list = node.getChild('LabelMatchers');
      for (const m of list
        ? [...list.getChildren('UnquotedLabelMatcher'), ...list.getChildren('QuotedLabelMatcher')]
        : []) {
        const parsed = matcherOf(m, text);
        if (parsed) matchers.push(parsed);
      }
      selectors.push({ names: namesOf(metric ? text(metric) : undefined, matchers), matchers, text: text(node) });
    },
  });
  return { errors, selectors };
}

/**
 * Replaces Grafana's variables (`$name`, `${name}`, `[[name]]`) with the given
 * values; throws if one is left that `values` does not name.
 */
export function substituteGrafanaVariables(expr: string, values: Readonly<Record<string, string>>): string {
  return expr.replace(
    /\$\{(\w+)(?::\w+)?\}|\[\[(\w+)\]\]|\$(\w+)/g,
    (whole, braced?: string, bracketed?: string, plain?: string) => {
      const name = braced ?? bracketed ?? plain ?? '';
      const value = values[name];
      if (value === undefined) throw new Error(`no value for the Grafana variable ${whole} in: ${expr}`);
      return value;
    },
  );
}
