// Package sandbox renders Jinja templates that come from untrusted model
// repositories (chat templates) within a Budget, as Python's sandboxed Jinja
// bounds range() and its recursion limit bounds macros: a hostile template ends
// in a BudgetError naming the template and the limit, never a hang, an
// out-of-memory kill or a fatal Go stack overflow.
//
// Why a rewrite and not the library alone: github.com/ardanlabs/jinja v1.12.0,
// which the project uses because it renders Hugging Face chat templates
// byte-identically, has no options to bound rendering (measured here: a
// recursive macro is `fatal error: stack overflow`, range(10**9) runs out of
// memory, nested range(100000) loops run for hours, printing a list nested
// 10^6 deep never ends, string doubling through a namespace passes its 64 MiB
// repetition limit, and rendering cannot be cancelled). Its evaluator is
// internal, so Compile parses the template with the library's own grammar and
// prints back an equivalent template whose work runs through guard functions
// passed in as template variables:
//
//   - every call goes through __hb_call (recursion depth, results), every
//     builtin filter through __hb_filter (priced before it runs: join, replace,
//     indent, tojson, batch, map, … can build far more than they read);
//   - the operators that build (+ ~ * %) are priced from both operands;
//     comparisons, tests, item and slice operands are walked for their nesting;
//   - for loops pay for their items, loop, macro and call bodies for each run
//     and the static text they emit, and {{ … }} for its output;
//   - range is replaced by a bounded one.
//
// Every guard checks the context, so rendering stops soon after it is
// cancelled. Templates may not use the names the guards live under ("__hb…")
// or the library's internal filter names ("__filter_…"). The rewrite changes
// nothing a template prints: TestGuardedRenderingMatchesLibrary and FuzzRender
// compare it with the plain library.
package sandbox
