/** npm run bench [-- --scenario NAME]: runs the benchmark scenarios and prints their figures. */
import { parseArgs } from 'node:util';
import { analyticsScaling } from './analytics-scaling.js';
import { cacheScenario } from './cache.js';

const SCENARIOS: Record<string, () => Promise<void>> = {
  'analytics-scaling': analyticsScaling,
  cache: cacheScenario,
};

const { values } = parseArgs({ options: { scenario: { type: 'string' } } });
const names = values.scenario ? [values.scenario] : Object.keys(SCENARIOS);
for (const name of names) {
  const scenario = SCENARIOS[name];
  if (!scenario) {
    console.error(`Unknown scenario ${name}; known: ${Object.keys(SCENARIOS).join(', ')}`);
    process.exit(2);
  }
  console.log(`\n== ${name}`);
  await scenario();
}
