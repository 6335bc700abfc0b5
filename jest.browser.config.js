// The browser suite: real pages in Debian's headless Chromium (never a downloaded browser), run by `.ci/run`.
import base from './jest.config.js';

export default {
  ...base,
  testMatch: ['<rootDir>/test/browser/**/*.test.ts'],
  testPathIgnorePatterns: ['/node_modules/', '/dist/'],
  testTimeout: 60000,
  maxWorkers: 1,
};
