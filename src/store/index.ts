// The on-disk checkpoint store: epoch images of a job under
// <storeDir>/<jobId>/epoch-<20 digits>/. An epoch is committed only when its
// MANIFEST.json is in place (ARCHITECTURE §3.3); every page carries a CRC32C
// checked before restore (§3.6). Writing a node's part and committing the
// manifest are separate steps so that several agents can write parts of one
// epoch and the coordinator commits once all are durable.

export { PAGE_BYTES, epochDir } from './layout.js';
export { storedSpecOf } from './stored-spec.js';
export type { ContainerMeta, EpochLayout, EpochManifest, PartInfo, StoredJobSpec, StoredUnit } from './manifest.js';
export { writeNodePart, commitEpoch } from './epoch-writer.js';
export type { CommitHooks, CommitInput, CommitStep, NodePartInput } from './epoch-writer.js';
export type { PartPage, StagedPart } from './part-plan.js';
export { stagedPartDigest } from './part-digest.js';
export { listCommitted, listJobs, epochChain } from './epoch-catalog.js';
export { removeIncomplete, removeIfIncomplete, type RemoveHooks, type RemoveOptions, type RemoveStep } from './epoch-removal.js';
export { retireEpoch, RETIRED_FILE, type RetireResult } from './epoch-retire.js';
export { loadEpoch, loadInto, verifyEpoch } from './epoch-reader.js';
export type { LoadOptions, LoadResult, LoadTarget, PageSink, VerifyResult } from './epoch-reader.js';
