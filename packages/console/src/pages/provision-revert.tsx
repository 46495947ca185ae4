import { call, O, otherMessages } from '../api.js'
import { useLive } from '../hooks.js'
import { updateTypeName } from '../names.js'
import type { PendingItem } from '../pending-items.js'
import { changeSubset, countsText, revertMeaning, titleOf } from '../pending-items.js'
import { Confirm, Errors } from '../ui.js'

interface Dependency {
  readonly dependency: Record<string, { href: string }>
}

/**
 * `chosen` and the pending changes that must go with it, as the API names them (`POST
 * /sec_policy/draft/dependencies`), asked again with those added until it names nothing more:
 * the server refuses a revert that would leave the draft referring to what it takes away.
 */
async function revertClosure(
  chosen: readonly PendingItem[],
  pending: readonly PendingItem[],
): Promise<PendingItem[]> {
  const set = new Map(chosen.map((i) => [i.href, i]))
  // Each round adds at least one pending change, so there are at most as many rounds as those.
  for (let round = 0; round < pending.length; round++) {
    const deps = await call<Dependency[]>('POST', `${O}/sec_policy/draft/dependencies`, {
      operation: 'revert',
      change_subset: changeSubset([...set.values()]),
    })
    const more = deps
      .flatMap((d) => Object.values(d.dependency))
      .flatMap(({ href }) => pending.filter((p) => p.href === href && !set.has(href)))
    if (more.length === 0) break
    for (const i of more) set.set(i.href, i)
  }
  return [...set.values()]
}

const itemList = (items: readonly PendingItem[]) => (
  <ul>
    {items.map((i) => (
      <li key={i.href}>
        {updateTypeName(i.update_type)}: {titleOf(i)}
      </li>
    ))}
  </ul>
)

/**
 * Asks before reverting one pending change (with whatever the draft needs reverted with it) or,
 * without `item`, all of them; reverts through the API and says what was reverted.
 */
export function RevertConfirm(props: {
  item?: PendingItem
  pending: readonly PendingItem[]
  onReverted: (said: string) => Promise<void>
  onClose: () => void
}) {
  const { item, pending } = props
  const closure = useLive(async () => (item ? revertClosure([item], pending) : []), null)
  const items = item ? closure.data : pending
  const others = items?.filter((i) => i.href !== item?.href) ?? []
  const revert = async () => {
    if (!items) return
    if (item) {
      await call('PUT', `${O}/sec_policy/delete`, { change_subset: changeSubset(items) })
      await props.onReverted(
        items.length === 1
          ? `Reverted ${titleOf(item)}: it is as the active policy has it.`
          : `Reverted ${items.length} changes: ${items.map(titleOf).join(', ')}.`,
      )
    } else {
      await call('DELETE', `${O}/sec_policy/pending`)
      await props.onReverted(
        `Reverted all ${items.length} pending changes (${countsText(items)}): the draft is the active policy again.`,
      )
    }
  }
  if (!item)
    return (
      <Confirm
        title={`Revert all ${pending.length} pending changes?`}
        confirm="Revert all"
        danger
        onConfirm={revert}
        onClose={props.onClose}
      >
        <p>Every draft change is dropped and the draft becomes the active policy again:</p>
        {itemList(pending)}
        <p>Nothing on any host changes. This cannot be undone.</p>
      </Confirm>
    )
  return (
    <Confirm
      title={`Revert ${titleOf(item)}?`}
      confirm={others.length > 0 ? `Revert ${others.length + 1} changes` : 'Revert'}
      danger
      disabled={!items}
      onConfirm={revert}
      onClose={props.onClose}
    >
      <p>{revertMeaning(item.update_type)}</p>
      {!items && !closure.error && (
        <p class="loading" role="status">
          Checking what depends on it…
        </p>
      )}
      <Errors messages={otherMessages(closure.error, [])} />
      {others.length > 0 && (
        <>
          <p>
            The draft cannot lose it alone: {others.length === 1 ? 'this change goes' : 'these go'}{' '}
            with it.
          </p>
          {itemList(others)}
        </>
      )}
      <p>Nothing on any host changes. This cannot be undone.</p>
    </Confirm>
  )
}
