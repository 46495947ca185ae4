/**
 * `parse` keeping its last answer: a listing identical to the one before, the usual case for
 * the periodic checks (nothing changed), is not parsed again. Parsing 100,000 addresses holds
 * the event loop for about 0.1 s (nft) to 0.2 s (ipset), during which no change event is taken;
 * comparing two listings costs about a millisecond. The answer is shared between the calls that get it, so
 * it must be treated as read-only (as the parsers' types say).
 */
export function lastParse<T>(parse: (text: string) => T): (text: string) => T {
  let last: { readonly text: string; readonly value: T } | undefined
  return (text) => {
    if (last?.text === text) return last.value
    const value = parse(text)
    last = { text, value }
    return value
  }
}
