import type { ComponentType } from 'preact'
import { render } from 'preact'
import { useEffect, useState } from 'preact/hooks'
import { call, O, otherMessages, setCsrf, whenSignedOut } from './api.js'
import { useLive } from './hooks.js'
import { Errors, Page, TextField } from './ui.js'
import './style.css'

/**
 * A page whose code is fetched when it is first shown: the console starts with the shell and
 * the page asked for, not all of them.
 */
function lazyPage<P extends object>(load: () => Promise<ComponentType<P>>): ComponentType<P> {
  let loaded: ComponentType<P> | undefined
  return function LazyPage(props: P) {
    const [Loaded, setLoaded] = useState(() => loaded)
    const [error, setError] = useState<unknown>()
    useEffect(() => {
      if (!Loaded)
        load().then((c) => {
          loaded = c
          setLoaded(() => c)
        }, setError)
    }, [])
    if (Loaded) return <Loaded {...props} />
    if (error) return <Errors messages={['The page could not be loaded: reload the console.']} />
    return (
      <p class="loading" role="status">
        Loading…
      </p>
    )
  }
}

const WorkloadsPage = lazyPage(() => import('./pages/workloads.js').then((m) => m.WorkloadsPage))
const WorkloadPage = lazyPage(() => import('./pages/workload.js').then((m) => m.WorkloadPage))
const PolicyPage = lazyPage(() => import('./pages/policy.js').then((m) => m.PolicyPage))
const TrafficPage = lazyPage(() => import('./pages/traffic.js').then((m) => m.TrafficPage))
const ProvisionPage = lazyPage(() => import('./pages/provision.js').then((m) => m.ProvisionPage))
const CoexistencePage = lazyPage(() =>
  import('./pages/coexistence.js').then((m) => m.CoexistencePage),
)
const PairingPage = lazyPage(() => import('./pages/pairing.js').then((m) => m.PairingPage))
const EventsPage = lazyPage(() => import('./pages/events.js').then((m) => m.EventsPage))

interface Session {
  readonly username: string
  readonly csrf_token: string
}

const NAV = [
  ['workloads', 'Workloads'],
  ['policy', 'Policy'],
  ['traffic', 'Traffic'],
  ['provision', 'Provision'],
  ['coexistence', 'Firewall Coexistence'],
  ['pairing', 'Pairing'],
  ['events', 'Events'],
] as const

const PAGES = new Set<string>(NAV.map(([k]) => k))

function NotFound() {
  return (
    <Page title="Page not found">
      <p>
        There is no page at <code>{location.hash || '/'}</code>. Go to{' '}
        <a href="#/workloads">Workloads</a>, or pick a page above.
      </p>
    </Page>
  )
}

const routeOf = () => location.hash.replace(/^#\/?/, '').split('/')

function SignIn({ onSignedIn }: { onSignedIn: (s: Session) => void }) {
  const [username, setUsername] = useState('admin')
  const [password, setPassword] = useState('')
  const [error, setError] = useState<unknown>()
  const submit = async (e: Event) => {
    e.preventDefault()
    try {
      onSignedIn(await call<Session>('POST', '/session', { username, password }))
    } catch (err) {
      setError(err)
    }
  }
  return (
    <main class="signin">
      <form onSubmit={(e) => void submit(e)} aria-labelledby="signin-title">
        <h1 id="signin-title">Palisade</h1>
        <p class="hint">
          Sign in with the admin user from <code>bootstrap.json</code> in the server&apos;s data
          directory.
        </p>
        <TextField
          id="username"
          label="Username"
          autoComplete="username"
          value={username}
          onValue={setUsername}
        />
        <TextField
          id="password"
          label="Password"
          type="password"
          autoComplete="current-password"
          value={password}
          onValue={setPassword}
        />
        <Errors messages={otherMessages(error, [])} />
        <button type="submit">Sign in</button>
      </form>
    </main>
  )
}

function Shell({ session, onSignOut }: { session: Session; onSignOut: () => void }) {
  const [route, setRoute] = useState(routeOf)
  useEffect(() => {
    const f = () => setRoute(routeOf())
    addEventListener('hashchange', f)
    return () => removeEventListener('hashchange', f)
  }, [])
  const pending = useLive(
    async () =>
      Object.values(await call<Record<string, unknown[]>>('GET', `${O}/sec_policy/pending`)).flat()
        .length,
    5000,
  )
  const page = route[0] || 'workloads'
  const id = route[1]
  const signOut = async () => {
    await call('DELETE', '/session').catch(() => undefined)
    onSignOut()
  }
  return (
    <div class="shell">
      <a class="skip" href="#main">
        Skip to content
      </a>
      <nav aria-label="Main" class="topnav">
        <span class="brand">Palisade</span>
        <ul>
          {NAV.map(([k, text]) => (
            <li key={k}>
              <a href={`#/${k}`} aria-current={page === k ? 'page' : undefined}>
                {text}
                {k === 'provision' && (pending.data ?? 0) > 0 && (
                  <span class="badge" aria-label={`${pending.data} pending`}>
                    {pending.data}
                  </span>
                )}
              </a>
            </li>
          ))}
        </ul>
        <span class="user">
          {session.username}{' '}
          <button type="button" class="link" onClick={() => void signOut()}>
            Sign out
          </button>
        </span>
      </nav>
      <main id="main" tabIndex={-1}>
        {page === 'workloads' && !id && <WorkloadsPage />}
        {page === 'workloads' && id && <WorkloadPage id={id} />}
        {page === 'policy' && !id && <PolicyPage />}
        {page === 'provision' && !id && <ProvisionPage onChanged={() => void pending.reload()} />}
        {page === 'coexistence' && !id && <CoexistencePage />}
        {page === 'pairing' && !id && <PairingPage />}
        {page === 'events' && !id && <EventsPage />}
        {page === 'traffic' && !id && <TrafficPage />}
        {(!PAGES.has(page) || (id && page !== 'workloads')) && <NotFound />}
      </main>
    </div>
  )
}

function App() {
  const [session, setSessionState] = useState<Session | null | undefined>(undefined)
  // The token must be in place before any change is sent, so it is set with the session.
  const setSession = (s: Session | null) => {
    setCsrf(s?.csrf_token)
    setSessionState(s)
  }
  useEffect(() => {
    whenSignedOut(() => setSession(null))
    call<Session>('GET', '/session').then(setSession, () => setSession(null))
  }, [])
  if (session === undefined) return <p class="loading">Loading…</p>
  if (session === null) return <SignIn onSignedIn={setSession} />
  return <Shell session={session} onSignOut={() => setSession(null)} />
}

render(<App />, document.getElementById('app') as HTMLElement)
