// The case ids the CLI gives the segmenter are pseudonyms: of the series (`purify pacs`) and of the file name (`purify segment`).
import { opaqueCaseId } from '../src/cli-util';
import { pacsCaseId } from '../src/commands/pacs';

describe('opaque case ids', () => {
  it.each([
    // [id, expected: prefix + "-" + first 16 hex digits of `printf %s KEY | sha256sum`]
    [pacsCaseId('1.2.3'), 'pacs-c47f5b18b8a430e6'],
    [pacsCaseId('2.25.335549194082539796436017109263641522916'), 'pacs-ed8ecf90f0806b93'],
    [opaqueCaseId('file', 'DOE_JANE_PID-73519-X'), 'file-8570239163669e23'],
  ])('%s', (id, expected) => {
    expect(id).toBe(expected);
  });
});
