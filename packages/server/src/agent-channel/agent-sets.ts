import type { FastifyInstance } from 'fastify'
import type { AddressSet } from '@palisade/model'
import type { SetWant } from '@palisade/protocol'
import { AGENT_PARAM, checkSetsRequest, setDelta, setsRoute } from '@palisade/protocol'
import type { AppContext } from '../context.js'
import { jsonText } from '../http.js'
import { setTexts } from '../stores/address-sets.js'
import { namedSets } from '../stores/host-policies.js'
import type { Db } from '../stores/db.js'
import { accepted } from '../validate.js'
import { agentOf, authenticatedFirst } from './agent-auth.js'

/** A request names at most one set per rule; ids are 32 characters. */
const BODY_LIMIT = 8 * 1024 * 1024
/** What the reply entries remembered may hold at most (characters: about as many bytes). */
const KEPT_CHARS = 64 * 1024 * 1024

/**
 * The shared address sets an agent's policy names: only those its current policy names (an
 * agent reads only its own data), each written out, or as a delta from the set the agent holds
 * for the same rule when that is smaller. A set its policy no longer names is `gone`: the policy
 * changed since the agent got it, and the agent asks for its policy again.
 *
 * A delta may start from any set of the org the store still has. That reveals nothing: a set's
 * id is the hash of its addresses, so an agent can name a set only if it knows its addresses or
 * was once sent its id in its own policy (and with it, the set).
 */
export function registerAgentSets(app: FastifyInstance, ctx: AppContext): void {
  const sets = new SetEntries(ctx.db)
  app.post(
    setsRoute(AGENT_PARAM),
    { onRequest: authenticatedFirst(ctx.db), bodyLimit: BODY_LIMIT },
    async (req, reply) => {
      const a = agentOf(req)
      const { want } = accepted(checkSetsRequest(req.body))
      const named = await namedSets(ctx.db, a.workloadId)
      const wanted = want.filter((w) => named.has(w.id))
      const gone = want.filter((w) => !named.has(w.id)).map((w) => w.id)
      const entries = await sets.entries(a.org, wanted)
      return jsonText(reply, 200, `{"sets":[${entries.join(',')}],"gone":${JSON.stringify(gone)}}`)
    },
  )
}

/**
 * Each set asked for as reply text: a delta where one is smaller than the set, else the set.
 * Remembered by content (ids name contents, so an entry never goes stale): a change to one set
 * is asked for by every agent that holds it, and computed and read from the store once.
 */
class SetEntries {
  readonly #kept = new Map<string, string>()
  #chars = 0

  constructor(private readonly db: Db) {}

  async entries(org: number, wanted: readonly SetWant[]): Promise<string[]> {
    const key = (w: SetWant) => `${org}/${w.from ?? ''}/${w.id}`
    const need = wanted.filter((w) => !this.#kept.has(key(w)))
    const ids = new Set(need.flatMap((w) => (w.from === undefined ? [w.id] : [w.id, w.from])))
    const texts = ids.size > 0 ? await setTexts(this.db, org, [...ids]) : new Map<string, string>()
    return wanted.map((w) => {
      const k = key(w)
      const hit = this.#kept.get(k)
      if (hit !== undefined) {
        // Least recently used goes first: a hit moves to the back.
        this.#kept.delete(k)
        this.#kept.set(k, hit)
        return hit
      }
      const to = texts.get(w.id)
      const whole = wholeEntry(w.id, to)
      const base = w.from === undefined || w.from === w.id ? undefined : texts.get(w.from)
      const delta = base === undefined ? undefined : deltaEntry(w, base, to ?? '')
      const chosen = delta !== undefined && delta.length < whole.length ? delta : whole
      this.#keep(k, chosen)
      return chosen
    })
  }

  #keep(key: string, entry: string): void {
    this.#kept.set(key, entry)
    this.#chars += entry.length
    for (const [k, e] of this.#kept) {
      if (this.#chars <= KEPT_CHARS) break
      this.#kept.delete(k)
      this.#chars -= e.length
    }
  }
}

const wholeEntry = (id: string, text: string | undefined) => {
  // The policy names it, so it is stored (written in the policy's own transaction).
  if (text === undefined) throw new Error(`address set ${id} is named by a policy but not stored`)
  return `{"id":${JSON.stringify(id)},"set":${text}}`
}

function deltaEntry(w: SetWant, from: string, to: string): string {
  const d = setDelta(JSON.parse(from) as AddressSet, JSON.parse(to) as AddressSet)
  return JSON.stringify({ id: w.id, from: w.from, add: d.add, remove: d.remove })
}
