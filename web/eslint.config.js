// The pages' lint (make check): ESLint's recommended rules, browser globals for the pages, Node's for
// the tests and the vendoring script. web/vendor/ is generated and not linted.
import js from "@eslint/js";
import globals from "globals";

export default [
  { ignores: ["vendor/", "node_modules/"] },
  js.configs.recommended,
  {
    files: ["lib/**/*.js", "pages/**/*.js"],
    languageOptions: { globals: globals.browser },
  },
  {
    files: ["tests/**/*.mjs", "vendor.mjs", "eslint.config.js"],
    languageOptions: { globals: globals.node },
  },
  {
    rules: {
      "no-unused-vars": ["error", { args: "after-used", caughtErrors: "none" }],
      eqeqeq: ["error", "always", { null: "ignore" }],
      "no-var": "error",
      "prefer-const": "error",
    },
  },
];
