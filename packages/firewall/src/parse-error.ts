/** The tool's output could not be read as a whole (not JSON, truncated, or structurally wrong). */
export class RulesetParseError extends Error {
  constructor(
    readonly tool: string,
    message: string,
  ) {
    super(`reading ${tool} output: ${message}`)
  }
}
