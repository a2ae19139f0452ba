// `purify pacs`: the case id the PACS bridge gives the segmenter is a pseudonym of the series.
import { pacsCaseId } from '../src/commands/pacs';

describe('pacsCaseId', () => {
  it.each([
    // [SeriesInstanceUID, expected: "pacs-" + first 16 hex digits of `printf %s UID | sha256sum`]
    ['1.2.3', 'pacs-c47f5b18b8a430e6'],
    ['2.25.335549194082539796436017109263641522916', 'pacs-ed8ecf90f0806b93'],
  ])('%s → %s', (uid, expected) => {
    expect(pacsCaseId(uid)).toBe(expected);
  });
});
