import { parse as ctrlParse } from '@ctrl/golang-template';
import { TemplateError, TemplateSet, formatFloat } from './gotemplate';

function render(source: string, data: unknown, defines = ''): string {
  const set = new TemplateSet();
  if (defines) set.add('_helpers.tpl', defines);
  set.add('t', source);
  return set.render('t', data);
}

describe('the subset shared with @ctrl/golang-template', () => {
  // An independent implementation of Go templates as the oracle: on the syntax
  // both support, both must print the same.
  const data = {
    name: 'segmenter',
    empty: '',
    zero: 0,
    yes: true,
    no: false,
    user: { name: 'Alice', role: '' },
    items: [{ name: 'a' }, { name: 'b' }],
    words: ['x', 'y', 'z'],
    ratio: 1.5,
  };
  it.each([
    // [template] — expected output is whatever @ctrl/golang-template prints
    ['plain text'],
    ['{{ .name }}'],
    ['{{ .user.name }}/{{ .user.role }}'],
    ['{{ if .name }}yes{{ else }}no{{ end }}'],
    ['{{ if .empty }}yes{{ else }}no{{ end }}'],
    ['{{ if .zero }}yes{{ else }}no{{ end }}'],
    ['{{ if and .name .yes }}both{{ else }}not both{{ end }}'],
    ['{{ if and .name .no }}both{{ else }}not both{{ end }}'],
    ['{{ if or .empty .yes }}either{{ else }}neither{{ end }}'],
    ['{{ if not .no }}negated{{ end }}'],
    ['{{ with .user }}Hello {{ .name }}{{ end }}'],
    ['{{ with .empty }}set{{ else }}unset{{ end }}'],
    ['{{ range .items }}{{ .name }};{{ end }}'],
    ['{{ range .words }}[{{ . }}]{{ end }}'],
    ['{{ index .words 1 }}'],
    ['{{ index .user "name" }}'],
    ['ratio={{ .ratio }}'],
  ])('%s', (template) => {
    expect(render(template, data)).toBe(ctrlParse(template, data));
  });
});

describe('Go template features the chart uses', () => {
  it.each([
    // [case, template, data, expected (by hand, from Go's text/template semantics)]
    ['trim markers remove the whitespace on their side', 'a  \n  {{- "b" -}}  \n  c', {}, 'abc'],
    ['a comment prints nothing', 'a{{/* note */}}b{{- /* trimmed */ -}} c', {}, 'abc'],
    ['pipeline passes the value as the last argument', '{{ "x" | printf "%s-%s" "y" }}', {}, 'y-x'],
    ['parenthesised pipeline and field after it', '{{ (index .m "k").port }}', { m: { k: { port: 7 } } }, '7'],
    ['variables and $ inside range', '{{ $p := "P" }}{{ range $i, $v := .l }}{{ $i }}{{ $v }}{{ $p }}{{ $.top }};{{ end }}', { l: ['a', 'b'], top: 'T' }, '0aPT;1bPT;'],
    ['range over a map goes in key order', '{{ range $k, $v := .m }}{{ $k }}={{ $v }},{{ end }}', { m: { b: 2, a: 1 } }, 'a=1,b=2,'],
    ['range else on an empty list', '{{ range .l }}x{{ else }}none{{ end }}', { l: [] }, 'none'],
    ['else if chain', '{{ if .a }}A{{ else if .b }}B{{ else }}C{{ end }}', { a: false, b: true }, 'B'],
    ['assignment changes the outer variable', '{{ $x := 1 }}{{ if true }}{{ $x = 2 }}{{ end }}{{ $x }}', {}, '2'],
    ['default takes the given value when set', '{{ default "d" .v }}|{{ default "d" .missing }}|{{ .e | default "d" }}', { v: 'v', e: '' }, 'v|d|d'],
    ['quote', '{{ quote .s }} {{ .n | quote }}', { s: 'a"b', n: 3 }, '"a\\"b" "3"'],
    ['int prints integers; floats print like Go %v', '{{ .big | int }} {{ .big }} {{ .small }}', { big: 67108864, small: 50151 }, '67108864 6.7108864e+07 50151'],
    ['indent and nindent', 'x:{{ "a\\nb" | nindent 2 }}|{{ indent 1 "c" }}', {}, 'x:\n  a\n  b| c'],
    ['toYaml sorts keys and drops the final newline', '{{ toYaml .m }}', { m: { b: 1, a: [1, 2] } }, 'a:\n  - 1\n  - 2\nb: 1'],
    ['eq, ne, and short-circuits', '{{ eq "a" "a" }} {{ ne "a" "b" }} {{ and .nil .nil.x }}', { nil: null }, 'true true '],
    ['missing map key prints nothing', '[{{ .missing }}]', {}, '[]'],
    ['printf %d of a float', '{{ printf "%s:%d" "h" .p }}', { p: 50151 }, 'h:50151'],
    ['trunc and trimSuffix', '{{ "abcdef-" | trunc 4 }}{{ "x-" | trimSuffix "-" }}', {}, 'abcdx'],
    ['merge: the first map that has a key wins', '{{ toYaml (merge (dict) .a .b) }}', { a: { k: 1 }, b: { k: 2, j: 3 } }, 'j: 3\nk: 1'],
    ['concat lists', '{{ toYaml (concat .a .b) }}', { a: [1], b: [2] }, '- 1\n- 2'],
    ['b64enc', '{{ b64enc "PEM" }}', {}, 'UEVN'],
  ])('%s', (_name, template, data, expected) => {
    expect(render(template, data)).toBe(expected);
  });

  it('includes defined templates with their own dot and $', () => {
    const defines = '{{- define "greet" -}}hi {{ .who }}{{ $.who }}{{- end -}}';
    expect(render('{{ include "greet" (dict "who" "A") | upper }}/{{ template "greet" .x }}', { x: { who: 'B' } }, defines)).toBe('HI AA/hi BB');
  });

  it.each([
    // [case, template, data, exact error]
    ['field of a missing value (as Go: nil pointer)', '{{ .a.b.c }}', { a: {} }, 't:1: nil pointer evaluating interface {}.c'],
    ['unknown function', '{{ sha256sum "x" }}', {}, 't:1: function "sha256sum" not defined'],
    ['int compared with a float', '{{ eq 1 .f }}', { f: 1 }, 't:1: error calling eq: incompatible types for comparison'],
    ['required without a value', '{{ required "tls.cert is required" .c }}', {}, 't:1: tls.cert is required'],
    ['undefined template', '{{ include "nope" . }}', {}, 'error calling include: template "nope" not defined'],
    ['unclosed block', '{{ if .a }}x', {}, 't:1: unclosed {{if}}'],
    ['unsupported action', '{{ block "b" . }}{{ end }}', {}, 't:1: {{block}} is not supported by this renderer'],
  ])('fails on %s', (_name, template, data, message) => {
    expect(() => render(template, data)).toThrow(new TemplateError(message));
  });
});

describe('formatFloat (Go %v of a float64)', () => {
  it.each([
    // [value, what Go's fmt.Sprint(float64) prints]
    [0, '0'],
    [1, '1'],
    [1.5, '1.5'],
    [123456, '123456'],
    [1e6, '1e+06'],
    [1234567, '1.234567e+06'],
    [0.0001, '0.0001'],
    [0.00001, '1e-05'],
    [-2.5e21, '-2.5e+21'],
  ])('%p → %p', (value, expected) => {
    expect(formatFloat(value)).toBe(expected);
  });
});
