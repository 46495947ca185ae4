/** The label types (label dimensions) every org starts with, as the vendor names them. */
export const DEFAULT_DIMENSION_NAMES: Readonly<Record<string, string>> = {
  role: 'Role',
  app: 'Application',
  env: 'Environment',
  loc: 'Location',
}
