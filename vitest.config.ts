import { defineConfig } from 'vitest/config';

// Test kinds by file name: *.unit.spec.ts (pure, fast), *.int.spec.ts (real SQLite, openssl,
// SMTP on loopback), *.e2e.spec.ts (the built CLI, OpenVPN in a network namespace).
export default defineConfig({
  test: {
    include: ['test/**/*.spec.ts'],
    testTimeout: 60_000,
    hookTimeout: 120_000,
    pool: 'forks',
    reporters: ['default'],
  },
});
