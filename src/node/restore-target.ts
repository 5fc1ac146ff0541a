import { GridError } from '../common/errors.js';
import type { LoadTarget } from '../store/index.js';
import { FRAMES_PER_CHUNK, PAGE_BYTES, type PageMemory } from './memory/page-memory.js';

// The store's LoadTarget over a job's page memory: a restore reads each page
// straight into a free frame the memory lends, and the frame becomes the
// page once the store has checked its bytes (installFrame). When no frame is
// free (a budget smaller than the image), the page is copied in instead
// (loadPage, which may evict to swap). Containers named in `sizes` but not
// yet created (a restore of some nodes' parts only) are created as their
// first page arrives.

export function pageMemoryTarget(memory: PageMemory, jobId: string, sizes: ReadonlyMap<string, number>): LoadTarget {
  const ensure = (container: string): void => {
    if (memory.hasContainer(jobId, container)) return;
    const pageCount = sizes.get(container);
    if (pageCount === undefined) throw new GridError('data-loss', `job ${jobId}: a restored page names container ${container}, which the epoch does not list`);
    memory.createContainer(jobId, container, pageCount);
  };
  return {
    regions: memory.frameChunks,
    regionBytes: FRAMES_PER_CHUNK * PAGE_BYTES,
    place: () => {
      const frame = memory.lendFrame();
      return frame < 0 ? -1 : frame * PAGE_BYTES;
    },
    installRun: (container, firstPage, count, address) => {
      try {
        ensure(container);
        memory.installFrames(jobId, container, firstPage, count, address / PAGE_BYTES);
      } catch (err) {
        // Not installed (installFrames checks before it changes anything): the store will not release them again.
        for (let k = 0; k < count; k++) memory.returnFrame(address / PAGE_BYTES + k);
        throw err;
      }
    },
    release: (address) => memory.returnFrame(address / PAGE_BYTES),
    copy: (container, page, data) => {
      ensure(container);
      memory.loadPage(jobId, container, page, data);
    },
    zero: (container, page) => {
      ensure(container);
      memory.loadZeroPage(jobId, container, page);
    },
  };
}
