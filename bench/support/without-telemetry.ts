/**
 * The control build of the telemetry section: lib/ compiled a second time, to
 * dist/without-telemetry/lib/, with the OpenTelemetry feature cut out of the transports. In every
 * file outside lib/telemetry/, `TransportTelemetry.start(...)` becomes `undefined` (the package is
 * never looked up) and every read of `this.telemetry` becomes the constant `undefined`, so the
 * per-message checks fold away in V8's optimizing compiler: the same code, minus the feature.
 * What stays is the `operation` argument the per-message path passes along, always undefined.
 */
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import ts from 'typescript';

const repoRoot = fileURLToPath(new URL('../../../', import.meta.url));
export const WITHOUT_TELEMETRY_DIR = join(repoRoot, 'dist', 'without-telemetry');

/** Builds the control; throws if the seam it cuts (the `telemetry` field, `TransportTelemetry.start`) is not where it was. */
export function buildWithoutTelemetry(): void {
  const configPath = join(repoRoot, 'tsconfig.lib.json');
  const config = ts.getParsedCommandLineOfConfigFile(configPath, {}, { ...ts.sys, onUnRecoverableConfigFileDiagnostic: (d) => fail([d]) });
  if (!config) throw new Error(`cannot read ${configPath}`);
  mkdirSync(WITHOUT_TELEMETRY_DIR, { recursive: true });
  const options: ts.CompilerOptions = {
    ...config.options,
    outDir: WITHOUT_TELEMETRY_DIR,
    rootDir: repoRoot,
    declaration: false,
    declarationMap: false,
    sourceMap: false,
    noEmitOnError: true,
  };
  const program = ts.createProgram(config.fileNames, options);
  // Type-checking first also binds the files: the transformer reads parent nodes.
  const errors = ts.getPreEmitDiagnostics(program).filter((d) => d.category === ts.DiagnosticCategory.Error);
  if (errors.length) fail(errors);
  const cut = { starts: 0, reads: 0 };
  const result = program.emit(undefined, undefined, undefined, false, { before: [cutTelemetry(cut)] });
  if (result.emitSkipped) fail(result.diagnostics);
  // A server and a client each start telemetry once and read the field on their hot paths.
  if (cut.starts < 2 || cut.reads < 4) {
    throw new Error(`without-telemetry build: found ${cut.starts} TransportTelemetry.start() call(s) and ${cut.reads} read(s) of this.telemetry; the seam moved`);
  }
}

function cutTelemetry(cut: { starts: number; reads: number }): ts.TransformerFactory<ts.SourceFile> {
  return (context) => (file) => {
    if (file.fileName.includes('/lib/telemetry/')) return file;
    const f = context.factory;
    const visit = (node: ts.Node): ts.Node => {
      if (
        ts.isCallExpression(node) &&
        ts.isPropertyAccessExpression(node.expression) &&
        ts.isIdentifier(node.expression.expression) &&
        node.expression.expression.text === 'TransportTelemetry' &&
        node.expression.name.text === 'start'
      ) {
        cut.starts++;
        return f.createVoidZero();
      }
      if (isTelemetryField(node) && !isAssignmentTarget(node)) {
        cut.reads++;
        return f.createVoidZero();
      }
      return ts.visitEachChild(node, visit, context);
    };
    return ts.visitEachChild(file, visit, context);
  };
}

function isTelemetryField(node: ts.Node): node is ts.PropertyAccessExpression {
  return ts.isPropertyAccessExpression(node) && node.expression.kind === ts.SyntaxKind.ThisKeyword && node.name.text === 'telemetry';
}

function isAssignmentTarget(node: ts.Node): boolean {
  const parent = node.parent;
  return ts.isBinaryExpression(parent) && parent.left === node && parent.operatorToken.kind >= ts.SyntaxKind.FirstAssignment && parent.operatorToken.kind <= ts.SyntaxKind.LastAssignment;
}

function fail(diagnostics: readonly ts.Diagnostic[]): never {
  const host: ts.FormatDiagnosticsHost = { getCanonicalFileName: (f) => f, getCurrentDirectory: () => repoRoot, getNewLine: () => '\n' };
  throw new Error(`without-telemetry build failed:\n${ts.formatDiagnostics(diagnostics, host)}`);
}
