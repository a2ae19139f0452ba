/**
 * Messages as logs and traces may carry them (#25 item 11). An error's text
 * often quotes what a client or a file supplied — a dataset path named after a
 * patient, a series description, a job id — and log lines and exported spans
 * outlive the request. `redactForLog` keeps our own words and the field names
 * (`backticks`) and replaces every double-quoted value by its length and
 * every absolute path by `‹path›`. The caller still gets the full message in
 * its gRPC status (it sent the value); only what the service keeps is redacted.
 */

const QUOTED = /"(?:[^"\\]|\\.)*"/g;
/** An absolute POSIX path at the start, or after a space, quote or bracket. */
const PATH = /(^|[\s'(=:,[])\/[^\s'",;)\]]*/g;

/** `message` with quoted values and absolute paths withheld (see the module comment). */
export function redactForLog(message: string): string {
  return message
    .replace(QUOTED, (quoted) => {
      let length = quoted.length - 2;
      try {
        length = (JSON.parse(quoted) as string).length;
      } catch {
        // Not JSON-escaped: count the raw characters between the quotes.
      }
      return `‹${length} characters›`;
    })
    // A colon or full stop that ends the path belongs to the sentence.
    .replace(PATH, (match: string, before: string) => `${before}‹path›${/[:.]*$/.exec(match)![0]}`);
}
