// Preloaded into Jest by scripts/test.sh. Native ESM in Jest needs --experimental-vm-modules, and Node
// then prints "ExperimentalWarning: VM Modules is an experimental feature" into the test output. Only
// that warning is dropped; every other warning (experimental or not) is still printed.
'use strict';
const emitWarning = process.emitWarning;
process.emitWarning = function (warning, ...rest) {
  const message = typeof warning === 'string' ? warning : warning && warning.message;
  if (typeof message === 'string' && message.startsWith('VM Modules is an experimental feature')) return;
  return emitWarning.call(this, warning, ...rest);
};
