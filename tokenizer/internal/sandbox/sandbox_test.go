package sandbox

import (
	"context"
	"errors"
	"runtime"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ardanlabs/jinja"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// vars is a small chat context, the same for the guarded and the plain library.
func vars() map[string]jinja.Value {
	msg := func(role, content string) jinja.Value {
		d := jinja.NewDict()
		d.AsDict().Set("role", jinja.NewString(role))
		d.AsDict().Set("content", jinja.NewString(content))
		return d
	}
	tool := jinja.NewDict()
	tool.AsDict().Set("name", jinja.NewString("get_weather"))
	params := jinja.NewDict()
	params.AsDict().Set("type", jinja.NewString("object"))
	params.AsDict().Set("required", jinja.NewList([]jinja.Value{jinja.NewString("city")}))
	tool.AsDict().Set("parameters", params)
	return map[string]jinja.Value{
		"messages": jinja.NewList([]jinja.Value{msg("system", "Be brief."), msg("user", "Hi <there> & 'you'"),
			msg("assistant", "<think>\nhm\n</think>\n\nHello!"), msg("user", "2+2?")}),
		"tools":                 jinja.NewList([]jinja.Value{tool}),
		"add_generation_prompt": jinja.NewBool(true),
		"bos_token":             jinja.NewString("<s>"),
		"eos_token":             jinja.NewString("</s>"),
		"n":                     jinja.NewInt(3),
	}
}

// peakHeap runs fn while sampling the heap and returns fn's error and the
// highest heap use seen above the starting point.
func peakHeap(fn func() error) (error, uint64) {
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	base := ms.HeapAlloc
	var peak atomic.Uint64
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			var m runtime.MemStats
			runtime.ReadMemStats(&m)
			if m.HeapAlloc > base && m.HeapAlloc-base > peak.Load() {
				peak.Store(m.HeapAlloc - base)
			}
			select {
			case <-stop:
				return
			case <-time.After(2 * time.Millisecond):
			}
		}
	}()
	err := fn()
	close(stop)
	<-done
	return err, peak.Load()
}

// TestHostileTemplatesStopOnTheirBudget renders each class of hostile template
// with the default budget: each ends in a BudgetError naming the template and
// the field it ran over, with the heap bounded and the process alive (a Go stack
// overflow would have killed the test binary).
func TestHostileTemplatesStopOnTheirBudget(t *testing.T) {
	for _, tc := range []struct{ name, source, limit string }{
		{"recursive macro", "{% macro f(n) %}{{ f(n+1) }}{% endmacro %}{{ f(0) }}", "MaxDepth"},
		{"mutually recursive macros", "{% macro f(n) %}{{ g(n) }}{% endmacro %}{% macro g(n) %}{{ f(n) }}{% endmacro %}{{ f(0) }}", "MaxDepth"},
		{"recursive loop", "{% for x in [1] recursive %}{{ loop([x]) }}{% endfor %}", "MaxDepth"},
		{"recursive caller", "{% macro f() %}{% call f() %}{% endcall %}{{ caller() }}{% endmacro %}{{ f() }}", "MaxDepth"},
		{"huge range", "{% for i in range(10**9) %}x{% endfor %}", "MaxRange"},
		{"negative huge range", "{{ range(0, -(10**12), -1)|length }}", "MaxRange"},
		{"nested ranges", "{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}", "MaxSteps"},
		{"string doubling through a namespace", "{% set ns = namespace(s='a') %}{% for i in range(100) %}{% set ns.s = ns.s ~ ns.s %}{% endfor %}", "MaxMemory"},
		{"string doubling with +", "{% set ns = namespace(s='ab') %}{% for i in range(100) %}{% set ns.s = ns.s + ns.s %}{% endfor %}", "MaxMemory"},
		{"list doubling", "{% set ns = namespace(l=[1]) %}{% for i in range(100) %}{% set ns.l = ns.l + ns.l %}{% endfor %}", "MaxMemory"},
		{"repetition chain", "{{ 'a' * 67108863 ~ 'a' * 67108863 ~ 'a' * 67108863 ~ 'a' * 67108863 ~ 'a' * 67108863 }}", "MaxMemory"},
		{"many distinct big strings", "{% set ns = namespace(l=[]) %}{% for i in range(1000) %}{% set ns.l = ns.l + ['x' * 1000000 ~ i] %}{% endfor %}", "MaxMemory"},
		{"replace amplification", "{{ ('a' * 1000000).replace('', 'b' * 1000) }}", "MaxMemory"},
		{"replace filter amplification", "{{ ('a' * 100000) | replace('a', 'b' * 10000) }}", "MaxMemory"},
		{"indent width", "{{ 'x\ny\nz' | indent(1000000000) }}", "MaxMemory"},
		{"tojson indent", "{{ tools | tojson(indent=1000000000) }}", "MaxMemory"},
		{"join separator", "{{ range(100000) | join('x' * 10000) }}", "MaxMemory"},
		{"batch fill", "{{ [1] | batch(1000000000, 0) | length }}", "MaxMemory"},
		{"map amplification", "{{ (['a\nb'] * 1000) | map('indent', 1000000) | list | length }}", "MaxMemory"},
		{"percent width", "{{ '%999999999d' % 1 }}", "MaxMemory"},
		{"percent star width", "{{ '%*d' % (999999999, 1) }}", "MaxMemory"},
		{"format placeholders", "{{ ('{0}' * 100000).format('y' * 10000) }}", "MaxMemory"},
		{"filter block amplification", "{% filter indent(1000000000) %}a\nb{% endfilter %}", "MaxMemory"},
		{"output flood", "{% for i in range(100000) %}{{ 'x' * 1000 }}{% endfor %}", "MaxOutput"},
		{"static text flood", "{% for i in range(100000) %}{% for j in range(10) %}" + strings.Repeat("y", 1000) + "{% endfor %}{% endfor %}", "MaxOutput"},
		{"macro output flood", "{% macro f() %}" + strings.Repeat("z", 10000) + "{% endmacro %}{% for i in range(100000) %}{% set s = f() %}{% endfor %}", "MaxOutput"},
		{"iterating a huge string", "{% for c in 'x' * 60000000 %}{% endfor %}", "MaxMemory"},
		{"indexing a huge string repeatedly", "{% set s = 'x' * 10000000 %}{% for i in range(100000) %}{{ s[i] }}{% endfor %}", "MaxMemory"},
		{"deeply nested value printed", "{% set ns = namespace(l=[]) %}{% for i in range(100000) %}{% set ns.l = [ns.l] %}{% endfor %}{{ ns.l }}", "MaxDepth"},
		{"deeply nested value compared", "{% set ns = namespace(l=[]) %}{% for i in range(1000) %}{% set ns.l = [ns.l] %}{% endfor %}{{ ns.l == ns.l }}", "MaxDepth"},
		{"deeply nested value as a dict key", "{% set ns = namespace(l=[]) %}{% for i in range(1000) %}{% set ns.l = [ns.l] %}{% endfor %}{{ {ns.l: 1} }}", "MaxDepth"},
		{"shared structure explosion", "{% set ns = namespace(l=[1]) %}{% for i in range(60) %}{% set ns.l = [ns.l, ns.l] %}{% endfor %}{{ ns.l|tojson }}", "MaxSteps"},
		{"quadratic unique", "{{ range(100000) | unique | length }}", "MaxSteps"},
		{"scanning a big string in a loop", "{% set s = 'x' * 50000000 %}{% for i in range(100000) %}{% if 'y' in s %}{% endif %}{% endfor %}", "MaxSteps"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tmpl, err := Compile("hostile template", tc.source)
			require.NoError(t, err)
			start := time.Now()
			err, peak := peakHeap(func() error {
				_, err := tmpl.Render(context.Background(), vars(), Budget{})
				return err
			})
			t.Logf("stopped after %v with a heap peak of %d MiB: %v", time.Since(start).Round(time.Millisecond), peak>>20, err)
			var be *BudgetError
			require.ErrorAs(t, err, &be)
			assert.Equal(t, tc.limit, be.Limit)
			assert.Contains(t, err.Error(), "hostile template")
			assert.Less(t, peak, uint64(1<<30), "the heap grew past 1 GiB")
		})
	}
}

func TestRenderHonoursCancellation(t *testing.T) {
	tmpl, err := Compile("slow template", "{% for i in range(100000) %}{% for j in range(100000) %}{{ j }}{% endfor %}{% endfor %}")
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	time.AfterFunc(50*time.Millisecond, cancel)
	_, err = tmpl.Render(ctx, vars(), Budget{MaxSteps: 1 << 50, MaxOutput: 1 << 40, MaxMemory: 1 << 40})
	require.ErrorIs(t, err, context.Canceled)
	assert.Contains(t, err.Error(), "slow template")
}

func TestCompileRejects(t *testing.T) {
	for _, tc := range []struct{ name, source, want string }{
		{"a guard's name", "{{ __hb_call(0, range, 10) }}", `reserved name "__hb_call"`},
		{"a guard name as a variable", "{% set __hb_out = 1 %}", "reserved name"},
		{"a builtin filter by its internal name", "{{ __filter_indent('x', 10) }}", "reserved name"},
		{"deep brackets", "{{ " + strings.Repeat("(", 5000) + "1" + strings.Repeat(")", 5000) + " }}", "nested deeper than"},
		{"a long operator chain", "{{ 1" + strings.Repeat(" ~ 1", 5000) + " }}", "levels deep"},
		{"deep blocks", strings.Repeat("{% if true %}", 5000) + strings.Repeat("{% endif %}", 5000), "blocks nested deeper"},
		{"huge source", strings.Repeat("x", MaxSourceBytes+1), "bytes of source"},
		{"a syntax error", "{{ 1 + }}", "bad template"},
		{"an unclosed block", "{% if x %}", "bad template"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Compile("bad template", tc.source)
			require.Error(t, err)
			assert.Contains(t, err.Error(), tc.want)
			assert.Contains(t, err.Error(), "bad template")
		})
	}
}

// corpus exercises the syntax the library supports; each renders the same
// guarded as plain.
var corpus = []string{
	"Hello {{ messages[0].content }}!",
	"{%- for m in messages %}<|{{ m.role }}|>{{ m['content'] }}{% if not loop.last %}\n{% endif %}{%- endfor %}",
	"{% for m in messages if m.role != 'system' %}{{ loop.index }}/{{ loop.length }}:{{ m.content|trim }} {% else %}none{% endfor %}",
	"{{ messages|selectattr('role', 'equalto', 'user')|map(attribute='content')|join(' | ') }}",
	"{{ (messages|length) ~ ' ' ~ messages|first|tojson }} {{ messages|last|tojson(indent=2) }}",
	"{{ tools|tojson }}{{ tools[0].parameters|dictsort }}{{ tools[0]|items|list }}",
	"{% set ns = namespace(found=false, n=0) %}{% for m in messages %}{% if m.role == 'user' %}{% set ns.found = true %}{% set ns.n = ns.n + 1 %}{% endif %}{% endfor %}{{ ns.found }} {{ ns.n }}",
	"{% macro greet(name, punct='!') -%}Hi {{ name }}{{ punct }}{%- endmacro %}{{ greet('a') }} {{ greet('b', punct='?') }} {{ greet('c', '.') if n else greet('d') }}",
	"{% macro wrap() %}[{{ caller() }}]{% endmacro %}{% call wrap() %}inside {{ n }}{% endcall %}",
	"{% macro row(x) %}<{{ x }}|{{ varargs|length }}|{{ kwargs|length }}>{% endmacro %}{{ row(1, 2, 3, k=4) }}",
	"{% macro list(items) %}{% call(item) each(items) %}({{ item }}){% endcall %}{% endmacro %}{% macro each(items) %}{% for i in items %}{{ caller(i) }}{% endfor %}{% endmacro %}{{ list([1, 2, 3]) }}",
	"{% for x in [[1, [2, [3]]], 4] recursive %}{% if x is iterable %}[{{ loop(x) }}]{% else %}{{ x }}{{ loop.depth }}{% endif %}{% endfor %}",
	"{{ 1 + 2 * 3 - 4 / 2 }} {{ 7 // 2 }} {{ 7 % 3 }} {{ 2 ** 10 }} {{ -3 }} {{ - -3 }} {{ +3 }} {{ -n }} {{ (1, 2) }} {{ (1,) }} {{ () }}",
	"{{ 'a' ~ 1 ~ none ~ true }} {{ 'ab' * 3 }} {{ 3 * 'ab' }} {{ [1, 2] * 2 }} {{ [1] + [2] }} {{ '%s-%05.1f-%d' % ('x', 2.5, 7) }} {{ '%s' % 'y' }}",
	"{{ 1 < 2 < 3 }} {{ 1 < 3 < 2 }} {{ 'a' in 'cat' }} {{ 'z' not in ['a'] }} {{ n is odd }} {{ n is not even }} {{ n is divisibleby 3 }} {{ messages is defined }} {{ nothing is undefined }}",
	"{{ x if n > 2 else 'small' }}|{{ 'yes' if n }}|{{ ('a' if false) is none }}",
	"{{ 'Hello World'.lower() }} {{ ' x '.strip() }} {{ 'a,b,c'.split(',') }} {{ 'abc'.startswith('a') }} {{ 'a-b'.replace('-', '+') }} {{ '{0}+{1}={}'.format(1, 2) }} {{ 'xyz'.upper() }} {{ 'hello'.title() }} {{ 'aXa'.count('a') }} {{ 'abc'.find('c') }}",
	"{{ 'abcdef'[1:4] }} {{ 'abcdef'[::-1] }} {{ 'abcdef'[-2:] }} {{ messages[1:]|length }} {{ messages[::2]|length }} {{ 'abc'[1] }} {{ 'abc'['x':] }} {{ [1,2,3][n-2] }}",
	"{{ {'a': 1, 'b': [1, 2], n: 'three'} }} {{ dict(z=1, a=2)|tojson }} {{ {'k': 'v'}.get('k') }} {{ {'k': 'v'}.items()|list }} {{ {'a': 1}.keys()|list }}",
	"{% set x = 1, 2 %}{{ x }} {% set a, b = 'p', 'q' %}{{ a }}{{ b }} {% set block %}B{{ n }}B{% endset %}{{ block }}",
	"{% filter upper %}shout {{ n }}{% endfilter %} {% filter replace('a', 'o') | title %}banana{% endfilter %}",
	"  {%- if true -%}  trimmed  {%- endif -%}  \n  {% if true %}\n    kept\n  {% endif %}\n{%+ if true +%} plus {% endif %}",
	"{# a comment #}{% raw %}{{ not rendered }}{% endraw %}{{ '}}' ~ '%}' }}",
	"{% for i in range(3) %}{{ loop.cycle('a', 'b') }}{{ loop.changed(i // 2) }}{{ loop.previtem }}{{ loop.revindex }}{% endfor %}",
	"{% for i in range(5) %}{% if i == 1 %}{% continue %}{% endif %}{% if i == 3 %}{% break %}{% endif %}{{ i }}{% endfor %}",
	"{{ range(5)|sum }} {{ range(5)|max }} {{ [3, 1, 2]|sort|join(',') }} {{ [1, 1, 2]|unique|list }} {{ 'ab'|list }} {{ range(7)|batch(3)|list }} {{ -2.5|abs }} {{ 2.567|round(1) }} {{ '42'|int + 1 }} {{ 'x'|float }}",
	"{{ '<b>&\"'|e }} {{ 'a  b c'|wordcount }} {{ 'a\nb'|indent(2, true) }} {{ none|default('dflt') }} {{ [1, 2]|reverse|list }} {{ '[1, {\"a\": 2}]'|from_json }}",
	"{% set j = joiner(', ') %}{% for i in range(3) %}{{ j() }}{{ i }}{% endfor %} {% set c = cycler('x', 'y') %}{{ c.next() }}{{ c.next() }}{{ c.next() }}",
	"{{ raise_exception('stop: ' ~ n) }}",
	"{{ messages[0].content.split(' ')|map('upper')|join }} {{ messages|map(attribute='role')|list }} {{ tools|map('tojson')|first }}",
	"{{ {'b': 1, 'a': 2}|dictsort }} {{ [{'k': 2}, {'k': 1}]|sort(attribute='k')|map(attribute='k')|list }} {{ ['B', 'a']|sort(case_sensitive=true) }}",
	"{%- set content = messages[2].content %}{%- if '</think>' in content %}{{ content.split('</think>')[-1].lstrip('\\n') }}|{{ content.split('</think>')[0].rstrip('\\n').split('<think>')[-1].lstrip('\\n') }}{% endif %}",
	"{{ 'a' 'b' \"c\" }} {{ 'esc\\'aped\\n\\t\\u00e9' }} {{ 1e3 }} {{ 1.5 }} {{ -9223372036854775808 }}",
	"{% set l = [1] %}{{ l.append(2) }}{{ l }} {% set d = {} %}{{ d.update({'a': 1}) }}{{ d }}",
	"{{ missing.attr }} {{ missing['k'] }} {{ messages[99] }} {{ messages.0.role }}",
}

// TestGuardedRenderingMatchesLibrary renders every corpus template guarded and
// with the plain library: same text, or both fail.
func TestGuardedRenderingMatchesLibrary(t *testing.T) {
	for _, src := range corpus {
		plain, err := jinja.Compile(src)
		require.NoError(t, err, src)
		want, wantErr := plain.RenderValues(vars())
		tmpl, err := Compile("t", src)
		require.NoError(t, err, src)
		got, gotErr := tmpl.Render(context.Background(), vars(), Budget{})
		if wantErr != nil {
			require.Error(t, gotErr, src)
			assert.Contains(t, gotErr.Error(), wantErr.Error(), src)
			continue
		}
		require.NoError(t, gotErr, src)
		assert.Equal(t, want, got, src)
	}
}

// FuzzRender renders arbitrary template source under a small budget: it must
// end (error or text) without panicking, and whatever renders within the
// budget must render exactly as the plain library renders it.
func FuzzRender(f *testing.F) {
	for _, src := range corpus {
		f.Add(src)
	}
	f.Add("{% macro f(n) %}{{ f(n+1) }}{% endmacro %}{{ f(0) }}")
	f.Add("{% set ns = namespace(s='a') %}{% for i in range(64) %}{% set ns.s = ns.s ~ ns.s %}{% endfor %}")
	f.Fuzz(func(t *testing.T, src string) {
		tmpl, err := Compile("fuzz", src)
		if err != nil {
			return
		}
		budget := Budget{MaxRange: 1000, MaxDepth: 32, MaxOutput: 1 << 20, MaxMemory: 4 << 20, MaxSteps: 20000}
		got, err := tmpl.Render(context.Background(), vars(), budget)
		var be *BudgetError
		if err != nil || errors.As(err, &be) {
			return
		}
		plain, err := jinja.Compile(src)
		require.NoError(t, err)
		want, err := plain.RenderValues(vars())
		require.NoError(t, err)
		require.Equal(t, want, got)
	})
}
