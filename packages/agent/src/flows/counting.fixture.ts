import type { Backend, Desired } from '@palisade/firewall'
import { compile } from '@palisade/firewall'
import type { HostPolicy } from '@palisade/model'
import { DEFAULT_FAILSAFE, hostPolicyFromLocalFile } from '@palisade/model'

/** A policy at `flow_summary` whose one rule allows 198.18.0.2 to TCP port 8080: it counts. */
export const countedPolicy = (version = 1): HostPolicy =>
  hostPolicyFromLocalFile({
    version,
    enforcement_mode: 'full',
    visibility_level: 'flow_summary',
    rules: [
      {
        action: 'allow',
        direction: 'inbound',
        peers: ['198.18.0.2'],
        services: [{ proto: 6, port: 8080 }],
      },
    ],
  })

/** `countedPolicy` compiled to count in the kernel on `backend`. */
export const countingState = (backend: Backend, version = 1): Desired =>
  compile(countedPolicy(version), { backend, failsafe: DEFAULT_FAILSAFE, flowCounting: true })
