import { useState } from 'preact/hooks'
import type { Issue } from '../api.js'
import { call, O, otherMessages } from '../api.js'
import { useLive } from '../hooks.js'
import { Confirm, Errors, when } from '../ui.js'
import { upgradeState } from './agent-upgrade-state.js'

/** A VEN as the API shows it: what its agent runs, and the release an upgrade ordered. */
export interface Ven {
  href: string
  name: string
  version: string
  target_release: string | null
  workloads: { href: string }[]
}

/** A release this server serves (`GET .../vens/releases`). */
interface Release {
  release: string
  node: string
  built_at: string
  files: { arch: string }[]
}

interface Outcome {
  release: string
  vens_upgraded: number
  errors: (Issue & { hrefs: string[] })[]
}

export const loadVens = () => call<Ven[]>('GET', `${O}/vens?max_results=100000`)

export function AgentVersion({ ven }: { ven: Ven | undefined }) {
  if (!ven) return <span class="muted">—</span>
  const s = upgradeState(ven)
  return (
    <>
      {ven.version}
      <span class={s.pending ? 'tag warn' : 'why'}>{s.text}</span>
    </>
  )
}

const plural = (n: number, one: string) => `${n} ${one}${n === 1 ? '' : 's'}`

/** What `PUT .../vens/upgrade` answered, for the VENs it was asked about. */
export interface Ordered {
  said: Outcome
  hrefs: string[]
}

/**
 * The Upgrade action for the chosen VENs: a release this server serves, confirmed, then
 * `PUT .../vens/upgrade`. The page shows what the server answered (`UpgradeOutcome`).
 */
export function UpgradeAgents(props: { chosen: readonly Ven[]; onOrdered: (o: Ordered) => void }) {
  const [asking, setAsking] = useState(false)
  const n = props.chosen.length
  return (
    <>
      <button
        type="button"
        disabled={n === 0}
        title={n === 0 ? 'Choose managed workloads first' : undefined}
        onClick={() => setAsking(true)}
      >
        Upgrade agents{n > 0 ? ` (${n})` : ''}
      </button>
      {asking && (
        <UpgradeConfirm
          chosen={props.chosen}
          onClose={() => setAsking(false)}
          onOrdered={(said, hrefs) => props.onOrdered({ said, hrefs })}
        />
      )}
    </>
  )
}

function UpgradeConfirm(props: {
  chosen: readonly Ven[]
  onClose: () => void
  onOrdered: (said: Outcome, hrefs: string[]) => void
}) {
  const releases = useLive(() => call<Release[]>('GET', `${O}/vens/releases`), null)
  const [picked, setPicked] = useState<string>()
  const offered = releases.data ?? []
  const release = picked ?? offered[0]?.release
  const n = props.chosen.length
  return (
    <Confirm
      title={`Upgrade ${plural(n, 'agent')}?`}
      confirm="Upgrade"
      disabled={release === undefined}
      onClose={props.onClose}
      onConfirm={async () => {
        const hrefs = props.chosen.map((v) => v.href)
        const said = await call<Outcome>('PUT', `${O}/vens/upgrade`, {
          release,
          vens: hrefs.map((href) => ({ href })),
        })
        props.onOrdered(said, hrefs)
      }}
    >
      <Errors messages={otherMessages(releases.error, [])} />
      {releases.data && offered.length === 0 && (
        <p class="empty">
          This server serves no agent release: run <code>npm run package</code> where it runs.
        </p>
      )}
      {offered.length > 0 && (
        <p>
          <label for="upgrade-release">Release</label>{' '}
          <select
            id="upgrade-release"
            value={release}
            onChange={(e) => setPicked((e.target as HTMLSelectElement).value)}
          >
            {offered.map((r) => (
              <option key={r.release} value={r.release}>
                {r.release} (Node {r.node}, {r.files.map((f) => f.arch).join(', ')}, built{' '}
                {when(r.built_at)})
              </option>
            ))}
          </select>
        </p>
      )}
      <p>
        Each agent downloads the release from this server at its next report, checks it, swaps it in
        and restarts; its rules stay in force throughout. One whose new build does not report within
        a minute goes back to the build it ran, and says so in an event.
      </p>
      <ul>
        {props.chosen.map((v) => (
          <li key={v.href}>
            {v.name} (runs {v.version})
          </li>
        ))}
      </ul>
    </Confirm>
  )
}

/**
 * What the server answered, and each ordered VEN's upgrade state as the live list reports it
 * (an agent that rolls back keeps its version and says why in an event).
 */
export function UpgradeOutcome(props: Ordered & { all: readonly Ven[] }) {
  const { said } = props
  const nameOf = (href: string) => props.all.find((v) => v.href === href)?.name ?? href
  const ordered = props.all.filter(
    (v) => props.hrefs.includes(v.href) && !said.errors.some((e) => e.hrefs.includes(v.href)),
  )
  return (
    <div class="upgrade-outcome">
      <p class="ok" role="status">
        Ordered {plural(said.vens_upgraded, 'agent')} to run release {said.release}.
      </p>
      <Errors
        messages={said.errors.map(
          (e) => `Not ordered: ${e.message}: ${e.hrefs.map(nameOf).join(', ')}`,
        )}
      />
      {ordered.length > 0 && (
        <table aria-label="Agents ordered to upgrade">
          <thead>
            <tr>
              <th scope="col">Agent</th>
              <th scope="col">Runs</th>
              <th scope="col">Upgrade</th>
            </tr>
          </thead>
          <tbody>
            {ordered.map((v) => (
              <tr key={v.href}>
                <td>{v.name}</td>
                <td>{v.version}</td>
                <td>{upgradeState(v).text}</td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
    </div>
  )
}
