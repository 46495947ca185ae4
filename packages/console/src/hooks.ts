import { useCallback, useEffect, useRef, useState } from 'preact/hooks'

/**
 * Loads data and keeps it fresh: reloads every `everyMs` (live updates without reloading the
 * page) and whenever `reload` is called. The last good data stays while a reload fails.
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
  const reload = useCallback(async () => {
    try {
      setData(await loader.current())
      setError(undefined)
    } catch (e) {
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
