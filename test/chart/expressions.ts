/**
 * Every PromQL expression the chart makes Prometheus or Grafana run: each
 * alert's expr, each dashboard panel's targets and each variable query, with
 * the Grafana variables filled in as Grafana would.
 */
import { findAll, type Manifest } from './helm.ts';
import { alertRulesOf } from './prometheus.ts';
import { substituteGrafanaVariables } from './promql.ts';

export interface ChartExpression {
  kind: 'alert' | 'panel' | 'variable';
  /** Where it is written (alert name, panel title and refId, variable name). */
  where: string;
  expr: string;
  /** For a variable: the label its `label_values(selector, label)` lists. */
  label?: string;
}

interface DashboardJson {
  panels: { title: string; targets?: { refId: string; expr: string }[] }[];
  templating: { list: { name: string; type: string; query: string | { query: string } }[] };
}

/** The expressions of the rendered alerts and dashboard; `values` fills in Grafana's variables. */
export function chartExpressions(
  manifests: readonly Manifest[],
  values: Readonly<Record<string, string>>,
): ChartExpression[] {
  const out: ChartExpression[] = [...alertRulesOf(manifests)].map(([alert, rule]) => ({
    kind: 'alert',
    where: alert,
    expr: rule.expr,
  }));
  const configMap = findAll(manifests, 'ConfigMap').find((m) => m.data?.['form-data.json']);
  if (!configMap) throw new Error('no dashboard ConfigMap rendered');
  const dashboard = JSON.parse(configMap.data['form-data.json'] as string) as DashboardJson;
  for (const panel of dashboard.panels) {
    for (const t of panel.targets ?? []) {
      out.push({
        kind: 'panel',
        where: `panel "${panel.title}" ${t.refId}`,
        expr: substituteGrafanaVariables(t.expr, values),
      });
    }
  }
  for (const v of dashboard.templating.list.filter((x) => x.type === 'query')) {
    const query = typeof v.query === 'string' ? v.query : v.query.query;
    const call = /^label_values\((.+),\s*([A-Za-z_]\w*)\)$/.exec(query.trim());
    if (!call) throw new Error(`variable ${v.name}: not a label_values(selector, label) query: ${query}`);
    out.push({
      kind: 'variable',
      where: `variable ${v.name}`,
      expr: substituteGrafanaVariables(call[1]!, values),
      label: call[2]!,
    });
  }
  return out;
}
