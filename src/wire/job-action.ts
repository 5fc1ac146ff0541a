import { GridError } from '../common/errors.js';
import { JobAction as WireAction } from '../gen/gridckpt/v1/common.js';

// Job control's verb on the wire (common.proto JobAction) and in the cores
// (protocol/messages.ts JobAction: the same union; wire sits below protocol).

type JobAction = 'cancel' | 'delete' | 'restore';

export function jobActionFromWire(a: WireAction): JobAction {
  switch (a) {
    case WireAction.JOB_ACTION_CANCEL: return 'cancel';
    case WireAction.JOB_ACTION_DELETE: return 'delete';
    case WireAction.JOB_ACTION_RESTORE: return 'restore';
    default: throw new GridError('invalid-argument', `bad action ${String(a)}: expected JOB_ACTION_CANCEL, JOB_ACTION_DELETE or JOB_ACTION_RESTORE`);
  }
}

export function jobActionToWire(a: JobAction): WireAction {
  return { cancel: WireAction.JOB_ACTION_CANCEL, delete: WireAction.JOB_ACTION_DELETE, restore: WireAction.JOB_ACTION_RESTORE }[a];
}
