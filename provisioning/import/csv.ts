// CSV as RFC 4180 describes it, and as spreadsheets actually write it: an optional UTF-8 BOM, CRLF,
// LF or CR line ends, quoted fields with "" for a quote and line breaks inside, blank lines between
// records. Pure: text in, records out, each with the line it starts on (for the rejection report).

export interface CsvRecord {
  /** 1-based line number where the record starts in the file. */
  line: number;
  fields: string[];
}

export type CsvProblem = { line: number; message: string };

/** Splits CSV text into records. Blank lines are skipped; an unterminated quote is a problem for its record. */
export function parseCsv(text: string): { records: CsvRecord[]; problems: CsvProblem[] } {
  const records: CsvRecord[] = [];
  const problems: CsvProblem[] = [];
  let i = text.charCodeAt(0) === 0xfeff ? 1 : 0;
  let line = 1;
  const n = text.length;
  while (i < n) {
    const start = line;
    const fields: string[] = [];
    let field = '';
    let quoted = false; // inside quotes
    let wasQuoted = false;
    let bad: string | undefined;
    let ended = false;
    while (i < n && !ended) {
      const ch = text[i];
      if (quoted) {
        if (ch === '"') {
          if (text[i + 1] === '"') {
            field += '"';
            i += 2;
          } else {
            quoted = false;
            i++;
          }
        } else {
          if (ch === '\n' || (ch === '\r' && text[i + 1] !== '\n')) line++;
          field += ch;
          i++;
        }
        continue;
      }
      if (ch === '"') {
        if (field.trim() === '' && !wasQuoted) {
          // A quote opens a field only at its start (spaces before it are dropped).
          field = '';
          quoted = true;
          wasQuoted = true;
        } else bad ??= 'a quote in the middle of an unquoted field';
        i++;
      } else if (ch === ',') {
        fields.push(field);
        field = '';
        wasQuoted = false;
        i++;
      } else if (ch === '\r' || ch === '\n') {
        i += ch === '\r' && text[i + 1] === '\n' ? 2 : 1;
        line++;
        ended = true;
      } else {
        if (wasQuoted && ch !== ' ' && ch !== '\t') bad ??= 'text after a closing quote';
        else if (!wasQuoted) field += ch;
        i++;
      }
    }
    if (quoted) bad = 'a quoted field is not closed before the end of the file';
    fields.push(field);
    if (fields.length === 1 && fields[0].trim() === '' && !wasQuoted) continue; // blank line
    if (bad) problems.push({ line: start, message: bad });
    else records.push({ line: start, fields });
  }
  return { records, problems };
}

/** Quotes a value for a CSV file when it needs it (RFC 4180 2.6, 2.7), and defuses spreadsheet formulas. */
export function csvField(v: string): string {
  // A cell starting with = + - @ is run as a formula by spreadsheets (CSV injection).
  const safe = /^[=+\-@\t\r]/.test(v) ? `'${v}` : v;
  return /[",\r\n]/.test(safe) ? `"${safe.replace(/"/g, '""')}"` : safe;
}
