// Jest reporter (jest.config.js): one plain closing line, `jest: N passed, N failed`, whatever reads the
// log. Written when the process exits, so it comes after Jest's own summary (printed by a reporter
// that runs after this one).
'use strict';
const { writeSync } = require('node:fs');

module.exports = class ClosingLine {
  onRunComplete(_contexts, results) {
    const line = `jest: ${results.numPassedTests} passed, ${results.numFailedTests} failed\n`;
    process.once('exit', () => writeSync(1, line));
  }
};
