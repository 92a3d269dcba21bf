package sandbox_test

import (
	"context"
	"errors"
	"fmt"

	"github.com/ardanlabs/jinja"

	"handbook/tokenizer/internal/sandbox"
)

func Example() {
	tmpl, err := sandbox.Compile("greeting", "{% for i in range(n) %}{{ i }} {% endfor %}")
	if err != nil {
		panic(err)
	}
	out, err := tmpl.Render(context.Background(), map[string]jinja.Value{"n": jinja.NewInt(3)}, sandbox.Budget{})
	fmt.Printf("%q %v\n", out, err)

	_, err = tmpl.Render(context.Background(), map[string]jinja.Value{"n": jinja.NewInt(1 << 40)}, sandbox.Budget{})
	var over *sandbox.BudgetError
	fmt.Println(errors.As(err, &over), over.Limit)
	// Output:
	// "0 1 2 " <nil>
	// true MaxRange
}
