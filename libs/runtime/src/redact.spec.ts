import { redactForLog } from './redact';

describe('redactForLog', () => {
  it.each([
    // [message, what a log line may say]
    ['`spec.source.path` must name an existing dataset folder, got "/data/JANE_DOE/ct"', '`spec.source.path` must name an existing dataset folder, got ‹17 characters›'],
    ['`name` must match [a-z]+, got "Doe \\"Jane\\""', '`name` must match [a-z]+, got ‹10 characters›'],
    ["ENOENT: no such file or directory, open '/srv/scans/Doe^Jane/1.nii.gz'", "ENOENT: no such file or directory, open '‹path›'"],
    ['checkpoint /var/lib/purify/jobs/doe-jane/last is missing', 'checkpoint ‹path› is missing'],
    ['/data/x: not a dataset', '‹path›: not a dataset'],
    ['wrote /tmp/out/seg.nii.gz.', 'wrote ‹path›.'],
    ['policy p:3 has 0 rewarded transitions buffered; the update needs at least 1 (min_transitions)', 'policy p:3 has 0 rewarded transitions buffered; the update needs at least 1 (min_transitions)'],
    ['round 1/3 took 2.5 s (and/or more)', 'round 1/3 took 2.5 s (and/or more)'],
  ])('%s', (message, logged) => {
    expect(redactForLog(message)).toBe(logged);
  });
});
