import { useCallback, useEffect, useRef, useState } from 'preact/hooks'

/**
 * Loads data and keeps it fresh: reloads every `everyMs` (live updates without reloading the
 * page) and whenever `reload` is called. The last good data stays while a reload fails; an answer
 * older than the one shown is dropped.
 */
export function useLive<T>(
  load: () => Promise<T>,
  everyMs: number | null,
  deps: readonly unknown[] = [],
): { data: T | undefined; error: unknown; reload: () => Promise<void> } {
  const [data, setData] = useState<T>()
  const [error, setError] = useState<unknown>()
  const loader = useRef(load)
  loader.current = load
  // A periodic load started before a change can answer after the reload that follows it; the
  // older answer must not overwrite the newer one.
  const started = useRef(0)
  const shown = useRef(0)
  const reload = useCallback(async () => {
    const seq = ++started.current
    try {
      const next = await loader.current()
      if (seq < shown.current) return
      shown.current = seq
      setData(next)
      setError(undefined)
    } catch (e) {
      if (seq < shown.current) return
      shown.current = seq
      setError(e)
    }
  }, [])
  useEffect(() => {
    void reload()
    if (everyMs === null) return
    const t = setInterval(() => void reload(), everyMs)
    return () => clearInterval(t)
  }, deps)
  return { data, error, reload }
}
