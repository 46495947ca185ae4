import { ENFORCEMENT_MODES, VISIBILITY_LEVELS } from '@palisade/model'
import { useState } from 'preact/hooks'
import type { Label } from '../api.js'
import { call, messagesFor, O, otherMessages } from '../api.js'
import { useLive } from '../hooks.js'
import { enforcementName, visibilityName } from '../names.js'
import { Errors, LabelPicker, Labels, ListState, Page, TableHead, TextField } from '../ui.js'

/** Palisade's addition to the `pairing_key` reply: the one-liner that installs from this server. */
interface InstallCommand {
  install_command: string | null
  install_unavailable?: string
}

interface Profile {
  href: string
  name: string
  enforcement_mode: string
  visibility_level: string
  labels: { href: string }[]
  allowed_uses_per_key: number | null
  key_lifespan: number | null
}

/** Pairing profiles, and activation codes with the exact command that pairs a host. */
export function PairingPage() {
  const live = useLive(async () => {
    const [profiles, labels, activation] = await Promise.all([
      call<Profile[]>('GET', `${O}/pairing_profiles`),
      call<Label[]>('GET', `${O}/labels?max_results=10000`),
      call<{ management_server: string; ca_cert: string | null }>('GET', `${O}/agent_activation`),
    ])
    return { profiles, labels, activation }
  }, 10_000)
  const [name, setName] = useState('')
  const [enforcement, setEnforcement] = useState('visibility_only')
  const [visibility, setVisibility] = useState('flow_summary')
  const [scope, setScope] = useState<string[]>([])
  const [error, setError] = useState<unknown>()
  const [code, setCode] = useState<{ profile: string; code: string; install: InstallCommand }>()
  const d = live.data
  const create = async (e: Event) => {
    e.preventDefault()
    setError(undefined)
    try {
      await call('POST', `${O}/pairing_profiles`, {
        name,
        enforcement_mode: enforcement,
        visibility_level: visibility,
        labels: scope.map((href) => ({ href })),
      })
      setName('')
      setScope([])
      await live.reload()
    } catch (err) {
      setError(err)
    }
  }
  const generate = async (p: Profile) => {
    try {
      const r = await call<{ activation_code: string; palisade: InstallCommand }>(
        'POST',
        `/api/v2${p.href}/pairing_key`,
        {},
      )
      setCode({ profile: p.name, code: r.activation_code, install: r.palisade })
    } catch (err) {
      setError(err)
    }
  }
  const command =
    code && d
      ? `sudo npx palisade agent activate --management-server ${d.activation.management_server} --activation-code ${code.code}${d.activation.ca_cert ? ` --ca-cert ${d.activation.ca_cert}` : ''}`
      : ''
  return (
    <Page title="Pairing">
      {code && (
        <section class="activation" aria-label="Activation code">
          <p>
            Activation code for <strong>{code.profile}</strong>:{' '}
            <code data-testid="activation-code">{code.code}</code>
          </p>
          <p>
            On the host to pair, install the agent from this server and pair it in one step (the CA
            certificate is the server&apos;s; copy it there first):
          </p>
          {code.install.install_command ? (
            <>
              <pre data-testid="install-command">{code.install.install_command}</pre>
              <button
                type="button"
                onClick={() =>
                  void navigator.clipboard?.writeText(code.install.install_command ?? '')
                }
              >
                Copy install command
              </button>
            </>
          ) : (
            <p data-testid="install-unavailable">
              Not available: {code.install.install_unavailable}
            </p>
          )}
          <p>Or, where Palisade is checked out:</p>
          <pre data-testid="activation-command">{command}</pre>
          <button type="button" onClick={() => void navigator.clipboard?.writeText(command)}>
            Copy command
          </button>
        </section>
      )}
      <ListState loading={!d} error={live.error} empty={d?.profiles.length === 0}>
        No pairing profiles yet: create one below, then generate an activation code from it.
      </ListState>
      <Errors messages={live.error ? otherMessages(live.error, []) : []} />
      <table aria-label="Pairing profiles" hidden={!d || d.profiles.length === 0}>
        <TableHead columns={['Name', 'Labels', 'Enforcement', 'Visibility']} action="Actions" />
        <tbody>
          {(d?.profiles ?? []).map((p) => (
            <tr key={p.href}>
              <td>{p.name}</td>
              <td>
                <Labels
                  labels={p.labels.flatMap((l) => d?.labels.filter((x) => x.href === l.href) ?? [])}
                />
              </td>
              <td>{enforcementName(p.enforcement_mode)}</td>
              <td>{visibilityName(p.visibility_level)}</td>
              <td>
                <button type="button" onClick={() => void generate(p)}>
                  Generate activation code
                </button>
              </td>
            </tr>
          ))}
        </tbody>
      </table>
      <form class="card" onSubmit={(e) => void create(e)} aria-labelledby="new-profile">
        <h2 id="new-profile">New pairing profile</h2>
        <Errors messages={otherMessages(error, ['$.name', '$.labels'])} />
        <TextField
          id="pp-name"
          label="Name"
          value={name}
          onValue={setName}
          errors={messagesFor(error, '$.name')}
        />
        <label for="pp-enf">Enforcement</label>
        <select
          id="pp-enf"
          value={enforcement}
          onChange={(e) => setEnforcement((e.target as HTMLSelectElement).value)}
        >
          {ENFORCEMENT_MODES.map((v) => (
            <option key={v} value={v}>
              {enforcementName(v)}
            </option>
          ))}
        </select>
        <label for="pp-vis">Visibility</label>
        <select
          id="pp-vis"
          value={visibility}
          onChange={(e) => setVisibility((e.target as HTMLSelectElement).value)}
        >
          {VISIBILITY_LEVELS.map((v) => (
            <option key={v} value={v}>
              {visibilityName(v)}
            </option>
          ))}
        </select>
        <fieldset>
          <legend>Labels of paired workloads</legend>
          <LabelPicker
            labels={d?.labels ?? []}
            value={scope}
            onChange={setScope}
            idPrefix="pp-label"
          />
          <Errors messages={messagesFor(error, '$.labels')} />
        </fieldset>
        <button type="submit">Create profile</button>
      </form>
    </Page>
  )
}
