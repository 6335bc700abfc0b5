// `npm run test:resilience`: faults, load, crashes and hostile input against server processes on real PostgreSQL.
// One file at a time: one of them stops PostgreSQL itself.
import base from './jest.config.js';

export default {
  ...base,
  testMatch: ['<rootDir>/test/resilience/**/*.test.ts', '<rootDir>/test/security/races.test.ts'],
  testPathIgnorePatterns: ['/node_modules/', '/dist/'],
  maxWorkers: 1,
  testTimeout: 120000,
};
