// Package tokenizer encodes and decodes text exactly as Hugging Face's
// `tokenizers` does for a tokenizer.json, and renders chat templates from
// tokenizer_config.json as transformers' apply_chat_template does.
//
// Supported tokenizer.json components: models BPE (byte-level like GPT-2,
// Llama-3 and Qwen; metaspace with byte_fallback like Llama-2 and Mistral;
// ignore_merges, continuing_subword_prefix, end_of_word_suffix, unk_token with
// fuse_unk), Unigram (Viterbi, byte fallback) and WordPiece; normalizers NFC,
// NFD, NFKC, NFKD, Lowercase, StripAccents, Strip, Prepend, Replace,
// BertNormalizer and Sequence; pre-tokenizers Split, ByteLevel, Metaspace,
// Whitespace, WhitespaceSplit, Punctuation, Digits, BertPreTokenizer,
// CharDelimiterSplit and Sequence; post-processors TemplateProcessing, ByteLevel,
// RobertaProcessing, BertProcessing and Sequence; decoders ByteLevel, Metaspace,
// ByteFallback, Fuse, Strip, Replace, WordPiece, BPEDecoder and Sequence. Added
// tokens honour special, lstrip, rstrip, normalized and single_word. An unknown
// component is an error naming it, never a silent fallback.
//
// Why the project owns this code: go-huggingface's hftokenizer, measured here,
// was exact on Qwen3 and Gemma3 but wrong on Llama-3 digit runs (Go's RE2 lacks
// the lookahead of HF's split regex; this package uses github.com/dlclark/regexp2,
// which has it), matched 0 of 24 Mistral-style metaspace + byte_fallback cases, and
// merged BPE pairs in quadratic time. Here BPE merges use a heap over a linked
// list of symbols, O(n log n) in the word length.
//
// A model repository is untrusted input. Chat templates render inside a
// TemplateBudget (range size as in Python's sandboxed Jinja, call and value
// depth, output, memory, steps; see internal/sandbox for how the library is
// guarded) and honour RenderOptions.Context; tokenizer.json regexes match
// under DefaultRegexTimeout (SetRegexTimeout). Each overrun is an error naming
// the template or the pattern.
//
// Chat templates run on github.com/ardanlabs/jinja with HF's globals
// (messages, add_generation_prompt, bos_token, eos_token, tools, documents,
// raise_exception, strftime_now, extra kwargs such as enable_thinking). Messages
// and tools are handed over as ordered values so `tojson` keeps JSON key order.
// {% generation %} … {% endgeneration %} blocks give the assistant-token mask
// (transformers' return_assistant_tokens_mask) through EncodeChat. A tokenizer
// without a template falls back to DefaultChatTemplate, the alignment-handbook's
// zephyr template.
//
// Note that transformers 5 rebuilds Llama-family tokenizers instead of running
// their tokenizer.json (for Mistral-7B-v0.1 it drops the Prepend/Replace
// normalizer for a Metaspace pre-tokenizer), so its ids differ from
// `tokenizers` on some inputs; this package follows tokenizer.json as written,
// which is what `tokenizers` and PreTrainedTokenizerFast do.
//
// The goldens under testdata/ come from tools/oracle/tokenizer_goldens.py.
package tokenizer
