package tokenizer_test

import (
	"fmt"

	"handbook/tokenizer"
)

func Example() {
	tok, err := tokenizer.Load("testdata/synthetic/bytelevel")
	if err != nil {
		fmt.Println(err)
		return
	}
	ids, err := tok.Encode("Hello world", true)
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(ids)
	fmt.Printf("%q\n", tok.Decode(ids, true))

	chat, err := tok.WithChatTemplate(tokenizer.ChatMLTemplate)
	if err != nil {
		fmt.Println(err)
		return
	}
	text, err := chat.Render([]tokenizer.Message{{Role: "user", Content: "Hi"}}, tokenizer.RenderOptions{AddGenerationPrompt: true})
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Printf("%q\n", text)
	// Output:
	// [0 581 69 551 79 221 87 329 76 68]
	// " Hello world"
	// "<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n"
}
