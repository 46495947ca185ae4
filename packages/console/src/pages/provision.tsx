import { useState } from 'preact/hooks'
import { call, O, otherMessages } from '../api.js'
import { useLive } from '../hooks.js'
import { Errors, Page, TableHead, when } from '../ui.js'

interface PendingItem {
  href: string
  update_type: string
  draft: Record<string, unknown> | null
  active: Record<string, unknown> | null
}
interface Version {
  href: string
  version: number
  commit_message: string
  created_at: string
  workloads_affected: number
  created_by?: { username?: string }
}

/** Fields that change on every save and say nothing about what the object does. */
const NOISE = new Set(['created_at', 'updated_at', 'created_by', 'updated_by', 'update_type'])
const shown = (doc: Record<string, unknown> | null) =>
  doc === null
    ? '(none)'
    : JSON.stringify(
        Object.fromEntries(Object.entries(doc).filter(([k]) => !NOISE.has(k))),
        null,
        2,
      )

/** Draft against active for every pending object; a commit message; the policy versions. */
export function ProvisionPage({ onProvisioned }: { onProvisioned: () => void }) {
  const live = useLive(async () => {
    const [pending, versions] = await Promise.all([
      call<Record<string, PendingItem[]>>('GET', `${O}/sec_policy/pending`),
      call<Version[]>('GET', `${O}/sec_policy`),
    ])
    return { pending, versions }
  }, 5000)
  const [message, setMessage] = useState('')
  const [error, setError] = useState<unknown>()
  const [done, setDone] = useState<string>()
  const items = Object.entries(live.data?.pending ?? {}).flatMap(([type, list]) =>
    list.map((i) => ({ type, ...i })),
  )
  const provision = async (e: Event) => {
    e.preventDefault()
    setError(undefined)
    try {
      const v = await call<{ version: number; workloads_affected: number }>(
        'POST',
        `${O}/sec_policy`,
        {
          update_description: message,
        },
      )
      setMessage('')
      await live.reload()
      setDone(`Provisioned as version ${v.version}; ${v.workloads_affected} workloads affected.`)
      onProvisioned()
    } catch (err) {
      setError(err)
    }
  }
  return (
    <Page title="Provision">
      {done && (
        <p class="ok" role="status">
          {done}
        </p>
      )}
      <h2>Pending changes</h2>
      {items.length === 0 && (
        <p class="empty">Nothing is pending: the draft equals the active policy.</p>
      )}
      {items.map((i) => (
        <article class="diff" key={i.href} aria-label={`${i.type} ${i.href}`}>
          <h3>
            {i.type.replace(/_/g, ' ')} <code>{i.href}</code>{' '}
            <span class="tag">{i.update_type}</span>
          </h3>
          <div class="side-by-side">
            <div>
              <h4>Active</h4>
              <pre>{shown(i.active)}</pre>
            </div>
            <div>
              <h4>Draft</h4>
              <pre>{shown(i.draft)}</pre>
            </div>
          </div>
        </article>
      ))}
      <form onSubmit={(e) => void provision(e)} class="provision">
        <label for="commit-message">Commit message</label>
        <textarea
          id="commit-message"
          rows={2}
          value={message}
          onInput={(e) => setMessage((e.target as HTMLTextAreaElement).value)}
        />
        <Errors messages={otherMessages(error, [])} />
        <button type="submit" disabled={items.length === 0}>
          Provision
        </button>
      </form>
      <h2>Policy versions</h2>
      <table aria-label="Policy versions">
        <TableHead columns={['Version', 'Commit message', 'Provisioned', 'Workloads affected']} />
        <tbody>
          {(live.data?.versions ?? []).map((v) => (
            <tr key={v.href}>
              <td>{v.version}</td>
              <td>{v.commit_message}</td>
              <td>{when(v.created_at)}</td>
              <td>{v.workloads_affected}</td>
            </tr>
          ))}
        </tbody>
      </table>
    </Page>
  )
}
