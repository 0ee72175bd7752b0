// Mocha's configuration, and the test tiers. `npm test` runs every tier (as CI does); TEST_TIER picks one:
// `npm run test:unit` (no I/O, seconds), `test:integration` (PostgreSQL, the SQS emulator, processes),
// `test:system` (images, clusters, chaos, the bench smoke, Prometheus and promtool, the cut-over rehearsal and the UI's forms against
// the original, the namespace partition, the release rehearsal).
const { globSync } = require('node:fs');

const UNIT = ['test/unit/**/*.test.ts'];
const SYSTEM = [
  'test/image/image.test.ts',
  'test/cluster/**/*.test.ts',
  'test/chaos.test.ts',
  'test/bench.test.ts',
  'test/chart/prometheus.test.ts',
  'test/chart/alerts.test.ts',
  'test/cut-over.test.ts',
  'test/ui-forms.test.ts',
  'test/partition.test.ts',
  'test/release/rehearsal.test.ts',
  'test/release/ct-install.test.ts',
];
const ALL = ['test/**/*.test.ts'];

// A folder another change has not added yet (test/cluster/) is left out, not warned about.
const present = (patterns) => patterns.filter((p) => globSync(p).length > 0);

const TIERS = {
  unit: { spec: UNIT, ignore: [] },
  integration: { spec: ALL, ignore: [...UNIT, ...SYSTEM] },
  system: { spec: present(SYSTEM), ignore: [] },
  all: { spec: ALL, ignore: [] },
};

const name = process.env.TEST_TIER || 'all';
const tier = TIERS[name];
if (!tier) throw new Error(`TEST_TIER=${name}: expected one of ${Object.keys(TIERS).join(', ')}`);

module.exports = {
  spec: tier.spec,
  ignore: tier.ignore,
  extension: ['ts'],
  // The root hooks stop the shared PostgreSQL; the unit tier never starts one.
  ...(name === 'unit' ? {} : { require: ['test/support/hooks.ts'] }),
  timeout: name === 'unit' ? 5000 : 60000,
  slow: name === 'unit' ? 200 : 2000,
  reporter: 'spec',
};
