import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { csvField, parseCsv } from '../../../provisioning/import/csv.ts';
import { readLinkRows, rejectionReport } from '../../../provisioning/import/import-links.ts';

const cases: [string, string, string[][], number[]][] = [
  [
    'plain LF',
    'a,b\n1,2\n',
    [
      ['a', 'b'],
      ['1', '2'],
    ],
    [1, 2],
  ],
  [
    'CRLF and no final newline',
    'a,b\r\n1,2',
    [
      ['a', 'b'],
      ['1', '2'],
    ],
    [1, 2],
  ],
  [
    'old Mac CR',
    'a,b\r1,2\r',
    [
      ['a', 'b'],
      ['1', '2'],
    ],
    [1, 2],
  ],
  ['a BOM is dropped', '\ufeffa,b\n', [['a', 'b']], [1]],
  [
    'blank and space-only lines are skipped',
    'a,b\n\n   \r\n1,2\n',
    [
      ['a', 'b'],
      ['1', '2'],
    ],
    [1, 4],
  ],
  ['quoted comma and doubled quote', 'x,"L,7""7"\n', [['x', 'L,7"7']], [1]],
  [
    'line break inside quotes keeps the record on its first line',
    '"a\r\nb",c\nd,e\n',
    [
      ['a\r\nb', 'c'],
      ['d', 'e'],
    ],
    [1, 3],
  ],
  ['empty fields', ',\n', [['', '']], [1]],
];

for (const [name, text, fields, lines] of cases) {
  test(`CSV: ${name}`, () => {
    const r = parseCsv(text);
    assert.equal(r.problems, []);
    assert.equal(
      r.records.map((x) => x.fields),
      fields,
    );
    assert.equal(
      r.records.map((x) => x.line),
      lines,
    );
  });
}

test('CSV: an unclosed quote and a stray quote are problems of their record, the rest still parses', () => {
  const r = parseCsv('a,b\nx,y"z\nok,1\n"open,2\n');
  assert.equal(
    r.records.map((x) => x.fields),
    [
      ['a', 'b'],
      ['ok', '1'],
    ],
  );
  assert.equal(
    r.problems.map((p) => p.line),
    [2, 4],
  );
});

test('rows: header in any case and column order; malformed IDs, bad service IDs, duplicates and short rows are rejected with codes', () => {
  const text = [
    'Service_User_ID , MYKEY_ID,extra',
    'L-1,K7M3-QX9B,x',
    'L-2,k7m3qx9c,',
    'L-3,K7M3QX9O,', // O is not in the alphabet
    'L 4,K7M3QX9D,', // a space in the service ID
    'L-5,K7M3QX9B,', // duplicate MyKey ID
    'L-6',
  ].join('\r\n');
  const r = readLinkRows(text);
  assert.equal(r.rows, [
    { line: 2, mykeyId: 'K7M3QX9B', serviceUserId: 'L-1' },
    { line: 3, mykeyId: 'K7M3QX9C', serviceUserId: 'L-2' },
  ]);
  assert.equal(
    r.rejected.map((x) => [x.line, x.code]),
    [
      [4, 'mykey_id_malformed'],
      [5, 'validation_failed'],
      [6, 'conflict'],
      [7, 'bad_request'],
    ],
  );
});

test('rows: a file without the header is refused as a whole', () => {
  assert.throws(() => readLinkRows('K7M3QX9B,L-1\n'), /header mykey_id,service_user_id/);
  assert.throws(() => readLinkRows(''), /header/);
});

test('report: quoted where needed, and spreadsheet formulas defused', () => {
  assert.is(csvField('a,b'), '"a,b"');
  assert.is(csvField('=HYPERLINK("x")'), `"'=HYPERLINK(""x"")"`);
  const rep = rejectionReport([{ line: 3, mykeyId: 'X', serviceUserId: 'L,1', code: 'mykey_id_not_found', message: 'no' }]);
  assert.is(rep, 'line,mykey_id,service_user_id,code,message\r\n3,X,"L,1",mykey_id_not_found,no\r\n');
});

test.run();
