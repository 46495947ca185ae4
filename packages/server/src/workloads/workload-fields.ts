import { ENFORCEMENT_MODES, OS_PLATFORMS, VISIBILITY_LEVELS } from '@palisade/model'
import type { Doc } from '../validate.js'
import { Checker } from '../validate.js'
import { apiInterfacesOf } from './workload-interfaces.js'

/**
 * The visibility levels the API takes: the model's, from the most detail to the least as the
 * vendor lists them, and the vendor's newer name for full detail.
 */
export const API_VISIBILITY_LEVELS = [
  ...[...VISIBILITY_LEVELS].reverse(),
  'enhanced_data_collection',
] as const

/**
 * Checks workload fields (all optional on update); resolves with the fields to write. The org's
 * labels are read only when the body names some.
 */
export async function checkWorkload(
  body: Doc,
  create: boolean,
  managed: boolean,
  labelsOfOrg: () => Promise<ReadonlyMap<string, { key: string }>>,
) {
  const c = new Checker()
  c.only(body, '$', [
    'name',
    'hostname',
    'description',
    'labels',
    'interfaces',
    'enforcement_mode',
    'visibility_level',
    'os_type',
    'external_data_set',
    'external_data_reference',
    'href',
  ])
  const name = c.string(body, 'name', '$', { max: 255 })
  const hostname = c.string(body, 'hostname', '$', { max: 255 })
  if (create && name === undefined && hostname === undefined)
    c.fail('$', 'a workload needs a name or a hostname')
  const enforcement = c.oneOf(body, 'enforcement_mode', '$', ENFORCEMENT_MODES)
  const visibility = c.oneOf(body, 'visibility_level', '$', API_VISIBILITY_LEVELS)
  const os = c.oneOf(body, 'os_type', '$', OS_PLATFORMS)
  const description = c.string(body, 'description', '$', { max: 1024, nullable: true })
  c.string(body, 'external_data_set', '$', { max: 255, nullable: true })
  c.string(body, 'external_data_reference', '$', { max: 255, nullable: true })
  let labels: string[] | undefined
  const list = c.array(body, 'labels', '$', { max: 64 })
  if (list) {
    const known = await labelsOfOrg()
    const keys = new Map<string, string>()
    labels = []
    list.forEach((x, i) => {
      const href = c.hrefRef(x, `$.labels[${i}]`)
      if (href === undefined) return
      const l = known.get(href)
      if (!l) return void c.fail(`$.labels[${i}]`, `label ${href} does not exist`, 'invalid_label')
      if (keys.has(l.key))
        c.fail(
          `$.labels[${i}]`,
          `a workload has one label per key; ${keys.get(l.key)} and ${href} are both "${l.key}"`,
          'invalid_label',
        )
      keys.set(l.key, href)
      labels?.push(href)
    })
  }
  const interfaces = apiInterfacesOf(c, body)
  if (interfaces && managed)
    c.fail('$.interfaces', 'the interfaces of a managed workload come from its agent')
  c.done()
  return {
    ...(name !== undefined && { name }),
    ...(hostname !== undefined && { hostname }),
    ...(enforcement && { enforcement_mode: enforcement }),
    ...(visibility && { visibility_level: visibility }),
    ...(os && { os_platform: os }),
    ...(labels && { labels }),
    ...(interfaces && { interfaces }),
    ...(description !== undefined && { description }),
    ...(body.description === null && { description: null }),
    ...(body.external_data_set !== undefined && {
      external_data_set: body.external_data_set as string,
    }),
    ...(body.external_data_reference !== undefined && {
      external_data_reference: body.external_data_reference as string,
    }),
  }
}
