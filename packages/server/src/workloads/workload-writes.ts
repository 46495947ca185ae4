/**
 * Workloads through the API: found (or 404), and those not managed by an agent created, edited
 * and removed, each change with its audit event in the same transaction. The audit log shows a
 * workload as it is stored.
 */
import type { Kysely } from 'kysely'
import type { Actor } from '../audit.js'
import { resourceChange } from '../audit.js'
import { now } from '../clock.js'
import { newUuid } from '../crypto.js'
import type { Database } from '../db/schema.js'
import { invalidOne, orNotFound } from '../errors.js'
import { workloadHref } from '../hrefs.js'
import { recordEvent } from '../stores/events.js'
import { labelsByHref } from '../stores/labels.js'
import type { NewWorkload, WorkloadRow } from '../stores/workloads.js'
import { agentOfWorkload, forgetAgent, isOnline, unpairOf } from '../stores/agents.js'
import { deleteHostPolicy } from '../stores/host-policies.js'
import type { Db } from '../stores/db.js'
import {
  deleteWorkload,
  findWorkload,
  insertWorkload,
  updateWorkload,
  workloadRecord,
} from '../stores/workloads.js'
import type { Doc } from '../validate.js'
import { checkWorkload } from './workload-fields.js'

/** A workload of the org by id; 404 when there is none. */
export const workloadOf = async (db: Db, org: number, id: string) =>
  orNotFound(await findWorkload(db, org, id), workloadHref(org, id))

export async function createWorkload(
  db: Kysely<Database>,
  actor: Actor,
  org: number,
  body: Doc,
): Promise<WorkloadRow> {
  const fields = await checkWorkload(body, undefined, () => labelsByHref(db, org))
  const id = newUuid()
  const t = now()
  const row: NewWorkload = {
    ...fields,
    id,
    org_id: org,
    name: fields.name ?? fields.hostname ?? id,
    hostname: fields.hostname ?? fields.name ?? '',
    managed: 0,
    agent_type: 'server',
    os_platform: fields.os_platform ?? 'linux',
    enforcement_mode: fields.enforcement_mode ?? 'idle',
    visibility_level: fields.visibility_level ?? 'flow_summary',
    labels: fields.labels ?? [],
    interfaces: fields.interfaces ?? [],
    description: fields.description ?? null,
    external_data_set: fields.external_data_set ?? null,
    external_data_reference: fields.external_data_reference ?? null,
    created_at: t,
    updated_at: t,
  }
  return db.transaction().execute(async (tx) => {
    await insertWorkload(tx, row)
    await recordEvent(tx, org, {
      event_type: 'workload.create',
      created_by: actor,
      resource_changes: [
        resourceChange('workload', workloadHref(org, id), 'create', undefined, workloadRecord(row)),
      ],
    })
    return workloadOf(tx, org, id)
  })
}

export async function editWorkload(
  db: Kysely<Database>,
  actor: Actor,
  org: number,
  id: string,
  body: Doc,
): Promise<void> {
  const before = await workloadOf(db, org, id)
  const agent = before.managed === 1 ? await agentOfWorkload(db, id) : undefined
  const fields = await checkWorkload(body, { row: before, online: isOnline(before, agent) }, () =>
    labelsByHref(db, org),
  )
  await db.transaction().execute(async (tx) => {
    const after = await updateWorkload(tx, id, { ...fields, updated_at: now() })
    await recordEvent(tx, org, {
      event_type: 'workload.update',
      created_by: actor,
      resource_changes: [
        resourceChange('workload', workloadHref(org, id), 'update', workloadRecord(before), after),
      ],
    })
  })
}

/** Removes a workload; one an agent manages is unpaired instead. */
export async function removeWorkload(
  db: Kysely<Database>,
  actor: Actor,
  org: number,
  id: string,
  force = false,
): Promise<void> {
  const before = await workloadOf(db, org, id)
  const managed = before.managed === 1
  if (managed && !force)
    throw invalidOne(
      'workload_managed',
      `${workloadHref(org, id)} is managed by an agent; unpair it instead, or delete it with ?force=true (its agent is told to unpair when it next calls)`,
    )
  await db.transaction().execute(async (tx) => {
    if (managed) {
      const agent = await agentOfWorkload(tx, id)
      // An unpair already asked for keeps its restore mode; otherwise our rules are removed.
      if (agent) await forgetAgent(tx, agent.id, unpairOf(agent.status) ?? 'default', now())
      await deleteHostPolicy(tx, id)
    }
    await deleteWorkload(tx, id)
    await recordEvent(tx, org, {
      event_type: 'workload.delete',
      created_by: actor,
      resource_changes: [
        resourceChange('workload', workloadHref(org, id), 'delete', workloadRecord(before)),
      ],
      ...(managed && {
        notifications: [
          {
            notification_type: 'workload.force_delete',
            info: {
              workload: workloadHref(org, id),
              hostname: before.hostname,
              what_happens:
                'its agent is told to unpair (firewall_restore: default) when it next calls',
            },
          },
        ],
      }),
    })
  })
}
