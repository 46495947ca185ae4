import { useState } from 'preact/hooks'
import { call, nameOfHref, O, otherMessages } from '../api.js'
import { useLive } from '../hooks.js'
import { Pager, useListView } from '../list.js'
import { firewallModeName, updateTypeName } from '../names.js'
import type { PendingItem } from '../pending-items.js'
import { changeSubset, countsText, pendingItems, titleOf, typeCount } from '../pending-items.js'
import { loadLabels, loadPolicy, loadWorkloads } from '../policy-data.js'
import { diffLines, policyLines } from '../policy-lines.js'
import type { HostChange } from '../policy-preview.js'
import { hostChanges, policyAfter } from '../policy-preview.js'
import type { WorkloadDoc } from '../policy-snapshot.js'
import { Confirm, Errors, Page, TableHead, when } from '../ui.js'
import { RevertConfirm } from './provision-revert.js'

interface Version {
  href: string
  version: number
  commit_message: string
  created_at: string
  workloads_affected: number
  object_counts?: Record<string, number>
  created_by?: { username?: string }
}

/**
 * Draft changes, as Illumio's Draft Changes page: each pending object with what changes in it,
 * chosen one by one; which hosts provisioning the chosen ones changes; a required commit
 * message; a confirmation; then the versions. A pending change, or all of them, can be reverted
 * instead, after a confirmation.
 */
export function ProvisionPage({ onChanged }: { onChanged: () => void }) {
  const live = useLive(async () => {
    const [pending, versions, draft, active, labels, workloads] = await Promise.all([
      call<Parameters<typeof pendingItems>[0]>('GET', `${O}/sec_policy/pending`),
      call<Version[]>('GET', `${O}/sec_policy?max_results=10000`),
      loadPolicy('draft'),
      loadPolicy('active'),
      loadLabels(),
      loadWorkloads<WorkloadDoc & { agent: unknown }>(),
    ])
    return { items: pendingItems(pending), versions, draft, active, labels, workloads }
  }, 5000)
  const [unchosen, setUnchosen] = useState<ReadonlySet<string>>(new Set())
  const [message, setMessage] = useState('')
  const [messageError, setMessageError] = useState<string>()
  const [confirming, setConfirming] = useState(false)
  const [done, setDone] = useState<string>()
  /** The change whose revert is being confirmed; `all` for every one. */
  const [reverting, setReverting] = useState<PendingItem | 'all'>()
  const d = live.data
  const items = d?.items ?? []
  const chosen = items.filter((i) => !unchosen.has(i.href))
  const all = chosen.length === items.length
  const changes: HostChange[] | undefined =
    d && chosen.length > 0
      ? hostChanges(
          d.active,
          policyAfter(d.active, d.draft, new Set(chosen.map((i) => i.href))),
          d.labels,
          d.workloads,
        )
      : undefined
  const versions = useListView(d?.versions ?? [], { text: (v) => v.commit_message, columns: [] })
  const toggle = (href: string) => {
    const next = new Set(unchosen)
    if (next.has(href)) next.delete(href)
    else next.add(href)
    setUnchosen(next)
  }
  const ask = (e: Event) => {
    e.preventDefault()
    setDone(undefined)
    if (!message.trim()) {
      setMessageError('Write a commit message: it is kept with the version, for whoever reads it.')
      return
    }
    setMessageError(undefined)
    setConfirming(true)
  }
  const provision = async () => {
    const v = await call<{ version: number; workloads_affected: number }>(
      'POST',
      `${O}/sec_policy`,
      {
        update_description: message.trim(),
        ...(!all && { change_subset: changeSubset(chosen) }),
      },
    )
    setMessage('')
    setUnchosen(new Set())
    await live.reload()
    setDone(`Provisioned as version ${v.version}; ${v.workloads_affected} workloads affected.`)
    onChanged()
  }
  const reverted = async (said: string) => {
    await live.reload()
    setDone(said)
    onChanged()
  }
  return (
    <Page title="Provision">
      {done && (
        <p class="ok" role="status">
          {done}
        </p>
      )}
      <Errors messages={otherMessages(live.error, [])} />
      <h2>Draft changes</h2>
      {!d && !live.error && (
        <p class="loading" role="status">
          Loading…
        </p>
      )}
      {d && items.length === 0 && (
        <p class="empty">Nothing is pending: the draft equals the active policy.</p>
      )}
      {items.length > 0 && (
        <div class="summary-bar">
          <p class="summary">Pending: {countsText(items)}.</p>
          <button type="button" class="danger" onClick={() => setReverting('all')}>
            Revert all
          </button>
        </div>
      )}
      {items.map((i) => {
        const lines = diffLines(
          policyLines(i.type, i.active, nameOfHref),
          policyLines(i.type, i.draft, nameOfHref),
        )
        const id = `pick-${i.href.replace(/\W/g, '-')}`
        return (
          <article class="diff" key={i.href} aria-label={titleOf(i)}>
            <div class="diff-head">
              <h3>
                <input
                  type="checkbox"
                  id={id}
                  checked={!unchosen.has(i.href)}
                  onChange={() => toggle(i.href)}
                />
                <label for={id} class="inline">
                  {titleOf(i)}
                </label>
                <span class={`tag change-${i.update_type}`}>{updateTypeName(i.update_type)}</span>
              </h3>
              <button
                type="button"
                class="danger small"
                aria-label={`Revert ${titleOf(i)}`}
                onClick={() => setReverting(i)}
              >
                Revert
              </button>
            </div>
            <ul class="lines" aria-label={`Changes to ${titleOf(i)}`}>
              {lines.map((l, k) => (
                <li key={k} class={l.change}>
                  <span class="sr-only">
                    {l.change === 'added' ? 'Added: ' : l.change === 'removed' ? 'Removed: ' : ''}
                  </span>
                  <span aria-hidden="true" class="mark">
                    {l.change === 'added' ? '+' : l.change === 'removed' ? '−' : ' '}
                  </span>
                  {l.text}
                </li>
              ))}
            </ul>
          </article>
        )
      })}
      {items.length > 0 && (
        <form onSubmit={ask} class="provision card" aria-label="Provision">
          <h3>Workloads affected</h3>
          <Affected changes={changes} chosen={chosen.length} />
          <label for="commit-message">Commit message</label>
          <textarea
            id="commit-message"
            rows={2}
            value={message}
            aria-required="true"
            aria-invalid={messageError ? true : undefined}
            aria-describedby={messageError ? 'commit-message-errors' : undefined}
            onInput={(e) => setMessage((e.target as HTMLTextAreaElement).value)}
          />
          <Errors id="commit-message-errors" messages={messageError ? [messageError] : []} />
          <div class="buttons start">
            <button type="submit" disabled={chosen.length === 0}>
              {all ? 'Provision all' : `Provision ${chosen.length} selected`}
            </button>
          </div>
        </form>
      )}
      {reverting && (
        <RevertConfirm
          item={reverting === 'all' ? undefined : reverting}
          pending={items}
          onReverted={reverted}
          onClose={() => setReverting(undefined)}
        />
      )}
      {confirming && (
        <Confirm
          title={`Provision ${chosen.length} change${chosen.length === 1 ? '' : 's'}?`}
          confirm="Provision now"
          onClose={() => setConfirming(false)}
          onConfirm={provision}
        >
          <ul>
            {chosen.map((i) => (
              <li key={i.href}>
                {updateTypeName(i.update_type)}: {titleOf(i)}
              </li>
            ))}
          </ul>
          <Affected changes={changes} chosen={chosen.length} />
          <p>
            Commit message: <q>{message.trim()}</q>
          </p>
        </Confirm>
      )}
      <h2>Policy versions</h2>
      {d && d.versions.length === 0 && <p class="empty">Nothing has been provisioned yet.</p>}
      {versions.rows.length > 0 && (
        <table aria-label="Policy versions">
          <TableHead
            columns={[
              'Version',
              'Commit message',
              'Provisioned',
              'By',
              'Changes',
              'Workloads affected',
            ]}
          />
          <tbody>
            {versions.rows.map((v) => (
              <tr key={v.href}>
                <td>{v.version}</td>
                <td>{v.commit_message || <span class="muted">none</span>}</td>
                <td>{when(v.created_at)}</td>
                <td>{v.created_by?.username ?? '—'}</td>
                <td>
                  {Object.entries(v.object_counts ?? {})
                    .map(([t, n]) => typeCount(t, n))
                    .join(', ')}
                </td>
                <td>{v.workloads_affected}</td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
      <Pager view={versions} label="Version pages" />
    </Page>
  )
}

function Affected({ changes, chosen }: { changes: HostChange[] | undefined; chosen: number }) {
  if (chosen === 0) return <p class="empty">Choose at least one change to provision.</p>
  if (!changes) return <p class="loading">Computing…</p>
  if (changes.length === 0)
    return <p>No workload with an agent gets a different policy from these changes.</p>
  return (
    <>
      <p>
        {changes.length} workload{changes.length === 1 ? '' : 's'} with an agent get a new policy:
      </p>
      <ul class="affected" aria-label="Workloads affected">
        {changes.slice(0, 25).map((c) => (
          <li key={c.href}>
            <a href={`#/workloads/${c.href.split('/').pop() ?? ''}`}>{c.name}</a>:{' '}
            {[
              ...(c.modeBefore !== c.modeAfter
                ? [`${firewallModeName(c.modeBefore)} → ${firewallModeName(c.modeAfter)}`]
                : []),
              ...(c.rulesAdded > 0
                ? [`${c.rulesAdded} rule${c.rulesAdded === 1 ? '' : 's'} added`]
                : []),
              ...(c.rulesRemoved > 0
                ? [`${c.rulesRemoved} rule${c.rulesRemoved === 1 ? '' : 's'} removed`]
                : []),
            ].join(', ') || 'settings change'}
          </li>
        ))}
        {changes.length > 25 && <li>and {changes.length - 25} more</li>}
      </ul>
    </>
  )
}
