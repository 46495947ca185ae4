import js from '@eslint/js'
import globals from 'globals'
import tseslint from 'typescript-eslint'

export default tseslint.config(
  {
    ignores: [
      '**/dist/**',
      'node_modules/**',
      'artifacts/**',
      'data/**',
      'packages/console/public/**',
    ],
  },
  js.configs.recommended,
  ...tseslint.configs.recommendedTypeChecked,
  {
    languageOptions: {
      globals: globals.node,
      parserOptions: {
        projectService: { allowDefaultProject: ['*.js', 'bin/*.js'] },
        tsconfigRootDir: import.meta.dirname,
      },
    },
    rules: {
      '@typescript-eslint/no-floating-promises': 'error',
      '@typescript-eslint/switch-exhaustiveness-check': [
        'error',
        { considerDefaultExhaustiveForUnions: true },
      ],
      '@typescript-eslint/consistent-type-imports': 'error',
      '@typescript-eslint/no-unused-vars': [
        'error',
        { argsIgnorePattern: '^_', varsIgnorePattern: '^_', ignoreRestSiblings: true },
      ],
    },
  },
  {
    // The console runs in the browser.
    files: ['packages/console/**/*.{ts,tsx}'],
    languageOptions: { globals: globals.browser },
  },
  {
    // Tests read JSON responses into the shape they expect.
    files: ['**/*.test.ts', '**/*.fixture.ts'],
    rules: { '@typescript-eslint/no-unnecessary-type-assertion': 'off' },
  },
  {
    // The pure core never spawns a process, reads a clock or touches a file.
    files: [
      'packages/model/src/**/*.ts',
      'packages/firewall/src/**/*.ts',
      'packages/protocol/src/**/*.ts',
    ],
    ignores: ['**/*.test.ts', '**/*.fixture.ts'],
    rules: {
      'no-restricted-imports': [
        'error',
        {
          paths: [
            'node:child_process',
            'node:fs',
            'node:fs/promises',
            'node:net',
            'node:http',
            'node:https',
          ],
        },
      ],
      'no-restricted-properties': ['error', { object: 'Date', property: 'now' }],
    },
  },
)
