// Lint rules: typescript-eslint's recommended set, plus the layering rule that keeps domain/ pure.
import js from '@eslint/js';
import tseslint from 'typescript-eslint';

export default tseslint.config(
  { ignores: ['dist/**', 'node_modules/**', 'test/eventstore/fixtures/**'] },
  js.configs.recommended,
  ...tseslint.configs.recommended,
  {
    rules: {
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_' }],
    },
  },
  {
    files: ['domain/**/*.ts', 'projections/user-list.ts', 'projections/crl-entries.ts', 'projections/audit-history.ts', 'projections/gateway.ts'],
    rules: {
      // The domain decides over plain data: no I/O, no clock, no randomness.
      'no-restricted-imports': [
        'error',
        { patterns: [{ group: ['node:*', 'fs', 'path', 'os', 'crypto', '../adapters/*', '../infra/*', '../commands/*'], message: 'domain/ is pure: pass data in instead' }] },
      ],
      'no-restricted-syntax': [
        'error',
        { selector: "NewExpression[callee.name='Date'][arguments.length=0]", message: 'no clock in the domain: take the instant as input' },
      ],
      'no-restricted-properties': [
        'error',
        { object: 'Date', property: 'now', message: 'no clock in the domain: take the instant as input' },
        { object: 'Math', property: 'random', message: 'no randomness in the domain' },
      ],
    },
  },
);
